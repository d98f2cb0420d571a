"""The server's host reboots: the client's connection is left half-open."""

import time
import zlib

from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER, connections
from lab.evidence.pcap import ACK, FIN, RST, SYN
from lab.inlab import tcptable
from lab.inlab.processes import describe
from lab.inlab.proofs import per_connection
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body, port_recording_connect
from lab.sockets import framing
from lab.sockets.reliable import ReliableSender

NAME = "peer-reboot"
TITLE = "Peer reboot (half-open connection)"
HOWTO = "When Sockets Die"
WIRE = """
The server's machine goes away and comes back with no memory of the connection, the way a
host does after a power cut and a reboot. While it was gone, nothing it said reached the
client: not the FIN or RST its dying kernel sent, nothing. The client's kernel still has the
connection open, and as long as the client sends nothing, nothing ever tells it otherwise: a
client that only waits for a reply waits for ever. The first segment the client does send
reaches a server that has no such connection, and is answered with RST. A careful client
takes that RST as a lost connection: it reconnects, asks the server what it already has, and
sends the rest, so every message still arrives exactly once.
"""
INJECTION = ("The threaded server stops reading after each connection's second message; every client sends a "
             "third, which the server's kernel acknowledges and keeps unread. Then the server-agent drops every "
             "packet of port 7000 in the server's namespace (iptables DROP on INPUT and OUTPUT), SIGKILLs the "
             "server (its kernel's RST for the unread data is dropped on the way out, and the socket is gone), "
             "waits until the supervisor's new server listens, and removes the rules.")
PATH = "direct"
WATCHDOG = 8.0
SIZE = 100
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE
BEFORE = 2        # intact exchanges before the fault
COUNT = 4         # robust's messages: 2 echoed, 1 unread when the server dies, 1 after the reboot
UNREAD_WAIT = 3.0
EXPECT = {
    "robust": Expect("completed", within=fixed(WATCHDOG - 1.0),
                     note="the reboot itself (about 1 to 2 s: supervisor delay 0.5 s and a new process), then "
                          "the RST to its next send, one reconnect with backoff, the resend"),
    "naive": Expect("blocked", note="it only waits in recv, and nothing ever arrives: half-open"),
}
REMEMBER = "A peer that rebooted says nothing until you send: only a send (or a deadline) reveals a half-open connection."
LOOK_FOR = ("Nothing from the server between the kill and the end of the cut: its dying kernel's RST was dropped. "
            "Then the careful client's next data segment, on the same ports as before, is answered by an RST "
            "at once, and a new handshake follows. The naive client's connection stays silent both ways until "
            "the watchdog.")


def reliable(ctx, subject, outcome):
    events = outcome.measurements.setdefault("events", [])
    ports = outcome.measurements.setdefault("local_ports", [])   # one per connection, in order

    connect = port_recording_connect(ports)

    def on_event(name, facts):
        if name in ("connected", "reconnecting", "resent"):
            plain = {k: v for k, v in facts.items() if isinstance(v, (int, float, str))}
            events.append({"event": name, "wall": time.time(), **plain})
            ctx.mark("client[robust]", name, **plain)

    with ReliableSender(subject.host, subject.port, ctx.config, on_event=on_event, connect=connect) as sender:
        ctx.facts["robust_session"] = sender.session_id.hex()
        for seq in range(1, BEFORE + 1):
            sender.send(body(seq, SIZE))
        sender.flush()
        outcome.exchanges_ok = sender.acked
        sender.send(body(BEFORE + 1, SIZE))   # the server's kernel ACKs it; the server never reads it
        ctx.mark("client[robust]", "sent a message the server will not read", seq=BEFORE + 1)
        ctx.ready()
        ctx.mark("client[robust]", "sending after the reboot", seq=COUNT)
        sender.send(body(COUNT, SIZE))
        sender.flush()
        outcome.exchanges_ok = sender.acked
        outcome.measurements.update(reconnects=sender.reconnects, resent=sender.resent)


def waiting(ctx, subject, outcome):
    actor = f"client[{subject.impl}]"
    subject.connect()
    for seq in range(1, BEFORE + 1):
        ctx.exchange(subject, outcome, body(seq, SIZE))
    subject.send(body(BEFORE + 1, SIZE))
    ctx.mark(actor, "sent a message the server will not read; waiting for its reply", seq=BEFORE + 1)
    ctx.ready()
    subject.receive()     # nothing will ever come: the server that owed this reply is gone
    ctx.mark(actor, "a reply came after all")


def worker(ctx, subject, outcome):
    (reliable if subject.impl == "robust" else waiting)(ctx, subject, outcome)


def open_ports(ctx):
    """impl -> the local port of its connection open at the fault (robust's sender: its current one)."""
    out = {}
    for impl in ctx.judged:
        if impl == "robust":
            ports = ctx.outcomes["robust"].measurements.get("local_ports") or []
            out[impl] = {ports[-1]} if ports else set()
        else:
            out[impl] = ctx.client_ports(impl)
    return out


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("client", port)
    ctx.apply("behave", mode="stop_reading", after=BEFORE)
    state = {}

    def fault():
        state["ports"] = open_ports(ctx)
        state["unread"] = wait_unread(ctx, port, state["ports"])
        state["reboot"] = ctx.apply("reboot", server="threaded")

    ctx.side_by_side(worker, fault=fault)
    capture.stop()
    reboot = state["reboot"]
    ctx.facts["reboot"] = reboot.facts()
    ports = state["ports"]
    everyone = set().union(*ports.values()) if ports else set()
    conns = {impl: connections(capture.pcap, server_port=port, client_ports=p) if capture.pcap else []
             for impl, p in ports.items()}
    prove_unread(ctx, state["unread"], ports)
    prove_new_process(ctx, reboot)
    prove_half_open(ctx, reboot, everyone, port)
    cut, after = windows(reboot, ctx.teardown_wall)
    ctx.prove("the cut dropped what the dying server's kernel sent: DROP on OUTPUT matched",
              reboot.dropped.get("out", 0) > 0,
              f"OUTPUT DROP matched {reboot.dropped.get('out')} packets, INPUT DROP {reboot.dropped.get('in')}, "
              f"while the port was cut off ({cut.describe(reboot.cut_wall)} from the cut)")
    per_connection(ctx, "no FIN or RST from the server reached the client while the port was cut off", conns,
                   lambda conn: quiet_server(conn, cut))
    if "robust" in conns:
        per_connection(ctx, "after the cut, the server answered the old connection's next segment with RST",
                       {"robust": conns["robust"]}, lambda conn: rst_answers(conn, after))
    waiters = {impl: c for impl, c in conns.items() if impl != "robust"}
    if waiters:
        per_connection(ctx, "after the cut, the waiting client's connection stayed silent both ways until the "
                            "watchdog", waiters, lambda conn: silent(conn, after))
    if "robust" in ctx.impls:
        check_robust(ctx, reboot)


def windows(reboot, teardown_wall):
    """(while cut off, after the cut): the cut is known to be in place from the kill until its
    removal was asked for (reboot.opening_wall), and the path may be open from that moment on;
    back_wall, when the agent said the rules were gone, is later by the agent's own reply."""
    return Window(reboot.killed_wall, reboot.opening_wall), Window(reboot.opening_wall, teardown_wall)


def wait_unread(ctx, port, ports):
    """Wait until each subject's last message sits unread in the server's kernel, and the client's kernel
    has its ACK (nothing left to send: a delayed ACK lost in the cut would bring a retransmission, and
    with it an RST, to a client that only waits). Returns port -> (unread at the server, unACKed at the
    client), as last seen."""
    wanted = set().union(*ports.values()) if ports else set()
    deadline = time.monotonic() + UNREAD_WAIT
    while True:
        server = {r.remote[1]: r.rx_queue for r in ctx.server_agent.tcp_table(port)
                  if r.local[1] == port and r.state == tcptable.ESTABLISHED}
        client = {r.local[1]: r.tx_queue for r in tcptable.read()
                  if r.remote[1] == port and r.state == tcptable.ESTABLISHED}
        seen = {p: (server.get(p), client.get(p)) for p in sorted(wanted)}
        if all(u is not None and u >= FRAME and c == 0 for u, c in seen.values()) or time.monotonic() >= deadline:
            return seen
        time.sleep(0.02)


def prove_unread(ctx, unread, ports):
    ok = bool(unread) and all(u is not None and u >= FRAME and c == 0 for u, c in unread.values()) \
        and all(ports.values())
    ctx.prove("before the kill, each subject's third message sat ACKed and unread in the server's kernel",
              ok, ", ".join(f":{p} {u} bytes unread at the server (a message is {FRAME}), {c} not yet ACKed at the "
                            f"client" for p, (u, c) in unread.items()) or "no subject connection")


def prove_new_process(ctx, reboot):
    before, after = reboot.before, reboot.after
    started = after.get("started") if after else None
    ok = (before is not None and after is not None and after.get("pid") != before.get("pid")
          and started is not None and reboot.killed_wall is not None and started >= reboot.killed_wall)
    when = f", started {started - reboot.killed_wall:+.3f} s from the kill" if ok or started else ""
    ctx.prove("the server behind port 7000 when the cut ended was a new process, started after the kill", ok,
              f"before: {describe(before)}; at the end of the cut: {describe(after)}{when}")


def prove_half_open(ctx, reboot, ports, port):
    server_side = {r.remote[1] for r in reboot.server_rows if r.local[1] == port and r.state != tcptable.LISTEN}
    client_side = {r.local[1] for r in reboot.client_rows if r.state == tcptable.ESTABLISHED}
    listening = [r for r in reboot.server_rows if r.state == tcptable.LISTEN and r.local[1] == port]
    ok = bool(ports) and ports <= client_side and not (ports & server_side) and bool(listening)
    ctx.prove("half-open at the end of the cut: the client's kernel had each connection ESTABLISHED, the server's "
              "had none of them (only the new server's listener)", ok,
              f"subject ports {sorted(ports)}; ESTABLISHED in the client's /proc/net/tcp: "
              f"{sorted(ports & client_side)}; in the server's: {sorted(ports & server_side)}; server listeners "
              f"on :{port}: {len(listening)}")


def quiet_server(conn, window):
    fin, rst = conn.first(SERVER, FIN, window), conn.first(SERVER, RST, window)
    said = len(conn.sent(SERVER, window))
    return fin is None and rst is None and said == 0, f"{said} segments from the server ({window.describe(window.start)})"


def rst_answers(conn, window):
    """The client's first segment after the cut, on the old ports, and an RST that answers it."""
    asked = next((s for s in conn.sent(CLIENT, window) if not s.has(SYN) and not s.has(RST)), None)
    if asked is None:
        return False, "the client sent nothing on the old connection after the cut"
    after_it = Window(asked.time_ns / 1e9, window.end)
    rst = conn.first(SERVER, RST, after_it)
    earlier = conn.sent(SERVER, Window(window.start, asked.time_ns / 1e9))
    # An RST for a segment with ACK carries that ACK as its sequence number (RFC 9293 3.10.7.1).
    ok = rst is not None and not earlier and (not asked.has(ACK) or rst.seq == asked.ack)
    if rst is None:
        return False, f"client segment ({asked.payload_len} bytes) {(asked.time_ns / 1e9 - window.start) * 1000:+.1f} " \
                      "ms after the cut, no RST from the server"
    return ok, (f"client segment ({asked.payload_len} bytes, ack {asked.ack}) "
                f"{(asked.time_ns / 1e9 - window.start) * 1000:+.1f} ms after the cut; server RST seq {rst.seq} "
                f"{(rst.time_ns - asked.time_ns) / 1e6:.2f} ms later; {len(earlier)} server segments before it")


def silent(conn, window):
    """Nothing either way after the cut, until the client's own close (the watchdog shuts its socket)."""
    own = [t for t in (conn.time_of(CLIENT, FIN, window), conn.time_of(CLIENT, RST, window)) if t is not None]
    quiet = Window(window.start, min(own) if own else window.end)
    said = len(conn.sent(SERVER, quiet))
    data = sum(s.payload_len for s in conn.sent(CLIENT, quiet, data=True))
    until = "the client's own close (the watchdog)" if own else "teardown"
    return said == 0 and data == 0, (f"{said} segments from the server, {data} data bytes from the client in "
                                     f"{quiet.describe(window.start)} from the end of the cut, until {until}")


def check_robust(ctx, reboot):
    m = ctx.outcomes["robust"].measurements
    stats = ctx.server_stats("threaded")
    session = stats.get("sessions", {}).get(ctx.facts.get("robust_session"), {})
    expected = sum(zlib.crc32(body(seq, SIZE)) for seq in range(1, COUNT + 1)) % 2**32
    ctx.check("robust", f"the server delivered each of the {COUNT} messages exactly once",
              session.get("count") == COUNT and session.get("last_seq") == COUNT,
              f"server count {session.get('count')}, last seq {session.get('last_seq')}")
    ctx.check("robust", "the server's checksum equals the checksum of what was sent",
              session.get("checksum") == expected, f"{session.get('checksum')} vs {expected}")
    causes = [e for e in m.get("events", []) if e.get("event") == "reconnecting"]
    first = causes[0] if causes else {}
    ok = len(causes) == 1 and first.get("error") in ("PeerReset", "BrokenPipe")
    took = (first["wall"] - reboot.back_wall) if first and reboot.back_wall else None
    m["detected_s"] = round(took, 4) if took is not None else None
    ctx.check("robust", "its next send met the RST: PeerReset, and it reconnected exactly once", ok,
              f"{len(causes)} reconnects; first cause {first.get('error')} ({first.get('errno_name')})"
              + (f", {took * 1000:.1f} ms after the cut ended" if took is not None else ""))
