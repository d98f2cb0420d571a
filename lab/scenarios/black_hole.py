"""A black hole in the path: the proxy stops passing data but keeps the connection open."""

from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import converse

NAME = "black-hole"
TITLE = "Black hole in the path"
HOWTO = "When Sockets Die"
WIRE = """
Toxiproxy stops forwarding the server's bytes and holds the connection open. The proxy's
kernel ACKs everything the client sends, so from the client's TCP all is well: no
retransmissions, keepalive probes answered, TCP_USER_TIMEOUT never reached. The reply
simply never comes. A middlebox or overloaded proxy can do exactly this.
"""
INJECTION = "A Toxiproxy timeout toxic (downstream, timeout 0: hold forever) on the threaded proxy."
PATH = "proxied"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"), detail={"detected_by": "heartbeat"},
                     note="dead_after 3 s + heartbeat 1 s; keepalive sees nothing wrong"),
    "naive": Expect("blocked"),
}
REMEMBER = "Keepalive checks the kernel next door, not the application: heartbeats check the peer."
LOOK_FOR = "The client's request is ACKed by the proxy's kernel at once; no retransmissions, no reply, PINGs ACKed and unanswered."


def run(ctx):
    before = ctx.client_agent.tcp_stats()
    ctx.side_by_side(converse(before=2, after=1), fault=lambda: ctx.apply("timeout", timeout=0))
    after = ctx.client_agent.tcp_stats()
    retrans = after["tcp"]["RetransSegs"] - before["tcp"]["RetransSegs"]
    ctx.prove("the proxy's kernel ACKed everything (no retransmissions by the client)", retrans == 0,
              f"RetransSegs grew by {retrans}")
