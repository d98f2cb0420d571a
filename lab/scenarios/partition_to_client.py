"""A one-way partition on the path: the client's packets still reach the server; the server's answers are lost."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, bound
from lab.scenarios import _partition

NAME = "partition-to-client"
TITLE = "One-way partition, server to client"
HOWTO = "When Sockets Die"
WIRE = """
The router between the hosts stops forwarding the server's packets to the client, silently,
and still forwards the client's. The client's next request reaches the server, which takes
it and answers; the answer and the server's ACK die at the router. To the client it looks
exactly like a request that never arrived: it retransmits it, and the server's kernel
acknowledges each copy again into the void. The server has the message; the client cannot
know that, so a retry after reconnecting must be one the server can recognise as a duplicate.
"""
INJECTION = (f"The router-agent drops every packet from the server's port {DEFAULT_PORT} in the router's "
             "FORWARD chain (iptables DROP on --sport); the way to the server is left alone.")
PATH = "direct"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout", "read-deadline")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s"),
    "naive": Expect("blocked", note="its request is retransmitted; the server got it long ago"),
}
REMEMBER = "A lost answer looks exactly like a lost request: the server may already have done it."
LOOK_FOR = ("On the server's interface the client's request arrives and the server answers it; on the router's lab "
            "side the answer never appears, and the client's request comes again and again.")


def run(ctx):
    _partition.run(ctx, "to-client")
