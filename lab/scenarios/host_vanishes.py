"""The server's host disappears: its packets stop, in both directions, without a word."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import converse

NAME = "host-vanishes"
TITLE = "Host vanishes"
HOWTO = "When Sockets Die"
WIRE = """
Every packet to and from the server's port is silently dropped, as if its power or cable
were cut. No FIN, no RST, no ICMP: the client's kernel retransmits its data with growing
gaps and would keep trying for about 15 minutes (tcp_retries2 = 15). A blocking recv waits
all that time and longer. Only a deadline of our own, a heartbeat, TCP keepalive or
TCP_USER_TIMEOUT turns the silence into an error.
"""
INJECTION = f"The server-agent drops all packets of port {DEFAULT_PORT} in the server's namespace (iptables DROP)."
PATH = "direct"
WATCHDOG = 30.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout", "keepalive")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s"),
    "naive": Expect("blocked"),
}
REMEMBER = "A vanished host says nothing: without a deadline of your own, recv() waits forever."
LOOK_FOR = "After the fault only the client speaks: its data and retransmissions arrive, spaced ever wider, and nothing comes back. The DROP counters count them."


def run(ctx):
    capture = ctx.capture("server")
    handle = {}

    def fault():
        handle["vanish"] = ctx.apply("vanish", port=DEFAULT_PORT)

    ctx.side_by_side(converse(before=2, after=1), fault=fault)
    dropped = handle["vanish"].dropped()
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    fault_wall = ctx.fault_at
    ctx.prove("the DROP rules met the client's packets", dropped > 0, f"{dropped} packets dropped")
    # tcpdump sees incoming packets before iptables drops them, and never sees what OUTPUT
    # dropped: after the fault the capture must hold client packets and nothing from the server.
    silent = [c for c in conns if c.server_to_client.last_packet is not None
              and c.client_to_server.last_packet is not None
              and c.client_to_server.last_packet > c.server_to_client.last_packet]
    ctx.prove("the server said nothing after the fault while the client kept sending",
              len(silent) == len(conns) and len(conns) == len(ctx.impls),
              f"{len(silent)} of {len(conns)} connections; fault at +{fault_wall}s")
    ctx.prove("the client's kernel kept trying: retransmissions or keepalive probes",
              conns and all(c.client_to_server.retransmissions + c.client_to_server.keepalive_probes > 0
                            for c in conns),
              ", ".join(f"{c.client}: {c.client_to_server.retransmissions} retransmissions, "
                        f"{c.client_to_server.keepalive_probes} probes" for c in conns))
    ctx.prove("no FIN or RST came from the server",
              all(c.server_to_client.fin.count == 0 and c.server_to_client.rst.count == 0 for c in conns),
              ", ".join(f"{c.client}: FIN {c.server_to_client.fin.count} RST {c.server_to_client.rst.count}"
                        for c in conns))
