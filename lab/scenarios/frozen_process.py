"""The server process freezes (SIGSTOP): its kernel keeps the connection alive."""

from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER
from lab.evidence.pcap import FIN, RST
from lab.inlab.proofs import per_connection, subjects
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import converse

NAME = "frozen-process"
TITLE = "Frozen process"
HOWTO = "When Sockets Die"
WIRE = """
The server process is stopped, not killed: it will never call recv or send again, but its
kernel is fine. It ACKs every segment the client sends and answers keepalive probes, so
TCP itself sees a healthy, quiet peer. Neither keepalive nor TCP_USER_TIMEOUT can fire.
Only the application can tell: a request that gets no reply, a heartbeat without answer.
"""
INJECTION = "The server-agent sends SIGSTOP to the threaded server process (SIGCONT afterwards)."
PATH = "direct"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"), detail={"detected_by": "heartbeat"},
                     note="dead_after 3 s + heartbeat 1 s; keepalive cannot see this"),
    "naive": Expect("blocked"),
}
REMEMBER = "A frozen peer's kernel still ACKs: only an application deadline or heartbeat notices."
LOOK_FOR = "The frozen server's kernel still ACKs every segment and every PING: no retransmissions, but no reply data either."


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    ctx.side_by_side(converse(before=2, after=1), fault=lambda: ctx.apply("freeze", server="threaded"))
    capture.stop()
    ctx.prove_each(prove_frozen, capture.pcap, port)


def prove_frozen(ctx, pcap, port):
    # From the moment the process was stopped until the lab began closing the clients.
    frozen = Window(ctx.fault_wall, ctx.teardown_wall)
    conns = subjects(ctx, pcap, port, EXPECT)
    per_connection(ctx, "the frozen server's kernel ACKed everything the client sent after the fault", conns,
                   lambda conn: acked(conn, frozen))
    per_connection(ctx, "no reply, FIN or RST came from the server after the fault", conns,
                   lambda conn: silent(conn, frozen))


def acked(conn, window):
    # The third message (and robust's PINGs) reached a kernel that still works: every one ACKed.
    sent = conn.sent(CLIENT, window, data=True)
    unacked = [s for s in sent if not conn.acked(s)]
    size = sum(s.payload_len for s in sent)
    return bool(sent) and not unacked, f"{len(sent)} data segments ({size} bytes) after the fault, {len(unacked)} not ACKed"


def silent(conn, window):
    # ... but the process never answered: no byte, no close, no reset.
    data = sum(s.payload_len for s in conn.sent(SERVER, window, data=True))
    fins, rsts = len(conn.sent(SERVER, window, flags=FIN)), len(conn.sent(SERVER, window, flags=RST))
    acks = len(conn.sent(SERVER, window))
    return data == fins == rsts == 0, f"server sent {acks} segments: {data} data bytes, {fins} FIN, {rsts} RST"
