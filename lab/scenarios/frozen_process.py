"""The server process freezes (SIGSTOP): its kernel keeps the connection alive."""

from lab.addresses import DEFAULT_PORT
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
    capture = ctx.capture("server")
    ctx.side_by_side(converse(before=2, after=1), fault=lambda: ctx.apply("freeze", server="threaded"))
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("the frozen server's kernel kept ACKing (no retransmissions from the client)",
              conns and all(c.client_to_server.retransmissions == 0 for c in conns),
              ", ".join(f"{c.client}: {c.client_to_server.retransmissions} retransmissions" for c in conns))
    ctx.prove("no FIN or RST came from the server",
              all(c.server_to_client.fin.count == 0 and c.server_to_client.rst.count == 0 for c in conns), "")
