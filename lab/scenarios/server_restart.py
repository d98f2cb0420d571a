"""The server restarts while 1000 messages are flowing."""

import time

from lab.evidence.legs import connections
from lab.inlab.processes import serving
from lab.inlab.proofs import per_connection, prove_restarted, server_closed_first, subjects
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import check_delivered_once, stream

NAME = "server-restart"
TITLE = "Server restart mid-stream"
HOWTO = "When Sockets Die"
WIRE = """
While the client streams 1000 numbered messages, the server process is killed; its kernel
closes the connection, and the supervisor starts a new server half a second later, which
reloads its record of what it already delivered. A client that remembers what was not yet
acknowledged can reconnect, learn where the server stands, and resend the rest, so every
message is delivered exactly once. A client that just writes to its socket loses whatever
was in flight and stops at the first error.
"""
INJECTION = "The server-agent SIGKILLs the threaded server after about 300 messages; the supervisor restarts it."
PATH = "direct"
COUNT = 1000
SIZE = 200
KILL_AT = 300
EXPECT = {
    "robust": Expect("completed", within=fixed(15.0), note="reconnect with backoff, resend the unacknowledged"),
    "naive": Expect("error", ("RuntimeError", "ConnectionResetError", "BrokenPipeError"),
                    note="the stream breaks at the crash"),
}
REMEMBER = "Surviving a restart takes sequence numbers, acknowledgements and resending, not just reconnecting."
LOOK_FOR = "The old connection ends with the kernel's FIN or RST; a new handshake follows within a second, then a HELLO, then the resent messages."


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    crash = {}

    def fault():
        # The process behind the clients' port, the connections open on it, and when the kill
        # was asked for: the proofs are about those, from that moment on.
        crash["before"] = serving(ctx.server_agent.processes(), port)
        if "robust" in ctx.impls:
            crash["robust_ports"] = set(ctx.outcomes["robust"].measurements.get("local_ports", []))
        crash["asked"] = time.time()
        crash["handle"] = ctx.apply("crash", server="threaded")

    ctx.side_by_side(stream(count=COUNT, size=SIZE, fault_at=KILL_AT), fault=fault)
    crash["handle"].wait_restarted()     # until the new server answers on its ports
    capture.stop()
    prove_restarted(ctx, port, crash["before"], crash["asked"])
    conns = subjects(ctx, capture.pcap, port, EXPECT)
    if "robust" in conns:   # the sender's own connections: the one open at the kill is under test
        conns["robust"] = connections(capture.pcap, server_port=port, client_ports=crash["robust_ports"])
    per_connection(ctx, "the dead server's kernel closed the connections open at the kill, before the client did",
                   conns, lambda conn: server_closed_first(conn, crash["asked"]))
    stats = ctx.server_stats("threaded")
    if "robust" in ctx.impls:
        check_delivered_once(ctx, stats, count=COUNT, size=SIZE, where="the server's record")
        m = ctx.outcomes["robust"].measurements
        ctx.check("robust", "it reconnected and resent", m.get("reconnects", 0) >= 1,
                  f"reconnects {m.get('reconnects')}, resent {m.get('resent')}")
    if "naive" in ctx.impls:
        ok = ctx.outcomes["naive"].exchanges_ok
        ctx.check("naive", "messages were lost", ok < COUNT, f"{ok} of {COUNT} echoed before the stream broke")
