"""A one-way partition on the path: the client's packets stop reaching the server; the server's still arrive."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, bound
from lab.scenarios import _partition

NAME = "partition-to-server"
TITLE = "One-way partition, client to server"
HOWTO = "When Sockets Die"
WIRE = """
The router between the hosts stops forwarding the client's packets to the server, silently,
and still forwards the server's packets to the client. The client's next request never
arrives, so nothing acknowledges it: the client's kernel retransmits it with growing gaps,
and a PING gets no PONG. The server notices nothing at all: it had no request to answer,
and its connection stays ESTABLISHED, idle, for as long as it lives. Only the client, the
side with something in flight, can find out, and only by a deadline of its own.
"""
INJECTION = (f"The router-agent drops every packet towards the server's port {DEFAULT_PORT} in the router's "
             "FORWARD chain (iptables DROP on --dport); the way back is left alone.")
PATH = "direct"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout", "read-deadline")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s; the server side notices nothing"),
    "naive": Expect("blocked", note="its request is retransmitted for about 15 minutes (tcp_retries2)"),
}
REMEMBER = "In a one-way partition the side with data in flight finds out; the other side may never know."
LOOK_FOR = ("On the router's lab side the client's request arrives and is sent again and again; on the server's "
            "interface nothing of it. The server's window probes on the lab's stalled connection still cross.")


def run(ctx):
    _partition.run(ctx, "to-server")
