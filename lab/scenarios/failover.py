"""The first server's host vanishes mid-stream; a client that knows a second host fails over to it."""

from lab.addresses import DEFAULT_PORT, STANDBY_CONTROL_PORT, STANDBY_HOST, STANDBY_PORT
from lab.evidence.anchor import SYN, Window, payload_bytes, segments
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import check_delivered_once, stream
from lab.server.control import control_request
from lab.sockets import framing

NAME = "failover"
TITLE = "Failover to a second server host"
HOWTO = "When Sockets Die"
WIRE = """
While the client streams 600 numbered messages, the first server's host vanishes: every packet
of its port is dropped, both ways, without a FIN, an RST or an ICMP error. A second host serves
the same service behind the same router, and the two share one record of what was delivered
(as two replicas over one store do). A client given both addresses turns the silence into an
error with its own heartbeat or TCP_USER_TIMEOUT, connects to the second host, learns from its
HELLO how far the record goes, and resends only the rest: every message is delivered exactly
once. A client that knows one address keeps waiting on the dead one.
"""
INJECTION = (f"The server-agent drops all packets of port {DEFAULT_PORT} in the first server's namespace (iptables "
             f"DROP on INPUT and on OUTPUT) after 200 messages; server2 and its port {STANDBY_PORT} are untouched.")
PATH = "direct"
COUNT = 600
SIZE = 200
FAULT_AT = 200       # robust is let past the fault just before sending this message
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE
WATCHDOG = 8.0       # naive is blocked on the dead host for good; twice robust's detection shows it
EXPECT = {
    "robust": Expect("completed", within=bound("frozen_peer", 2.0),
                     note="dead_after 3 s + heartbeat 1 s (or TCP_USER_TIMEOUT 3 s) to notice the silence, then "
                          "2 s for the reconnect to server2 and the remaining 400 messages"),
    "naive": Expect("blocked", note="one address: it waits on the vanished host until the watchdog"),
}
NOT_GRADABLE = ("graded code is handed one server address (the submission interface connects to one host), so it "
                "has nowhere to fail over to")
REMEMBER = "Failover needs a second address and a shared record: reconnecting alone would resend to a dead host."
LOOK_FOR = ("On the first host, the client's segments keep arriving after the fault and nothing answers them. On "
            "server2, a handshake a few seconds later, a HELLO, then the rest of the stream; the shared record "
            "counts each of the 600 messages once.")


def run(ctx):
    first = ctx.capture("server")
    client_side = ctx.capture("client")
    second = ctx.capture("server2", STANDBY_PORT)
    at_fault = {}

    def fault():
        # The connections that meet the fault: robust's current one, and naive's.
        robust_ports = ctx.outcomes["robust"].measurements.get("local_ports", []) if "robust" in ctx.impls else []
        at_fault["robust"] = set(robust_ports[-1:])
        at_fault["handle"] = ctx.apply("vanish", port=DEFAULT_PORT)

    ctx.side_by_side(stream(count=COUNT, size=SIZE, fault_at=FAULT_AT, fallbacks=[(STANDBY_HOST, STANDBY_PORT)]),
                     fault=fault)
    counts = at_fault["handle"].counts(target="DROP")
    for capture in (first, client_side, second):
        capture.stop()
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    met = at_fault["robust"] | ctx.client_ports("naive")
    prove_first_host_vanished(ctx, first.pcap, client_side.pcap, win, met, counts["in"])
    if "robust" in ctx.impls:
        prove_second_host_took_over(ctx, second.pcap, win)
        check_exactly_once(ctx)
    if "naive" in ctx.impls:
        ok = ctx.outcomes["naive"].exchanges_ok
        ctx.check("naive", "it never got past the vanished host", ok == FAULT_AT - 1,
                  f"{ok} of {COUNT} echoed: the {FAULT_AT - 1} before the fault and none after")


def prove_first_host_vanished(ctx, server_pcap, client_pcap, win, met, dropped_in):
    """Both ways, on each connection open at the fault: the client's segments reached the first host
    and were dropped there, and nothing of the first host's reached the client."""
    arrived = {p: segments(server_pcap, win, dst_port=DEFAULT_PORT, peer_ports={p}) for p in sorted(met)}
    ctx.prove("the subjects' segments reached the first host after the fault, on every connection open at the fault",
              len(met) == len(ctx.judged) and all(arrived.values()),
              ", ".join(f":{p} sent {len(s)}" for p, s in arrived.items())
              + f" in {win.describe(ctx.fault_wall)} from the fault (the first host's interface)")
    seen_in = len(segments(server_pcap, win, dst_port=DEFAULT_PORT))
    ctx.prove("the INPUT rule dropped every one of them", seen_in > 0 and dropped_in >= seen_in,
              f"INPUT DROP matched {dropped_in} packets; {seen_in} arrived on the first host's interface "
              f"in {win.describe(ctx.fault_wall)}")
    reached = segments(client_pcap, win, src_port=DEFAULT_PORT, peer_ports=met)
    ctx.prove("nothing from the first host reached the client after the fault",
              not reached and len(client_pcap.segments) > 0,
              f"{len(reached)} segments from :{DEFAULT_PORT} to {sorted(met)} in {win.describe(ctx.fault_wall)} "
              f"(the client's interface; {len(client_pcap.segments)} captured in all)")


def prove_second_host_took_over(ctx, pcap, win):
    """Robust's rest of the stream went to server2, on connections opened after the fault: at least
    every message from the fault on (none of them could reach the first host)."""
    m = ctx.outcomes["robust"].measurements
    later = set(m.get("local_ports", [])[1:])
    syns = segments(pcap, win, dst_port=STANDBY_PORT, peer_ports=later, flags=SYN)
    before = segments(pcap, Window(None, ctx.fault_wall), dst_port=STANDBY_PORT)
    carried = payload_bytes(segments(pcap, win, dst_port=STANDBY_PORT, peer_ports=later))
    need = (COUNT - FAULT_AT + 1) * FRAME
    ctx.prove(f"robust's connection to {STANDBY_HOST} opened after the fault, and none before it",
              bool(syns) and not before,
              f"{len(syns)} SYN from {sorted(later)} to :{STANDBY_PORT} in {win.describe(ctx.fault_wall)}; "
              f"{len(before)} segments to :{STANDBY_PORT} before the fault (server2's interface)")
    ctx.prove(f"the rest of the stream went to {STANDBY_HOST}: at least the messages from the fault on",
              carried >= need,
              f"{carried} payload bytes to :{STANDBY_PORT}; messages {FAULT_AT}-{COUNT} are {need} bytes of frames")


def check_exactly_once(ctx):
    """The shared record, read on server2: each message once, and the bytes the client sent."""
    stats = control_request(STANDBY_HOST, STANDBY_CONTROL_PORT, {"cmd": "stats"}, timeout=5.0)["stats"]
    check_delivered_once(ctx, stats, count=COUNT, size=SIZE, where="the shared record of the two hosts")
    hosts = ctx.outcomes["robust"].measurements.get("hosts", [])
    ctx.check("robust", f"it failed over to {STANDBY_HOST} and stayed there",
              len(hosts) >= 2 and hosts[0].endswith(f":{DEFAULT_PORT}")
              and hosts[-1] == f"{STANDBY_HOST}:{STANDBY_PORT}",
              f"connected to {', '.join(hosts) or 'nothing'}")
