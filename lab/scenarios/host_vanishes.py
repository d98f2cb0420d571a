"""The server's host disappears: its packets stop, in both directions, without a word."""

from lab.addresses import DEFAULT_PORT, SERVER_HOST
from lab.evidence.anchor import Window, segments
from lab.evidence.streams import resent
from lab.inlab.scenario import Expect, bound
from lab.inlab.stalled import StalledReply
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
INJECTION = (f"The server-agent drops all packets of port {DEFAULT_PORT} in the server's namespace (iptables DROP "
             "on INPUT and on OUTPUT).")
PATH = "direct"
WATCHDOG = 8.0   # naive is judged blocked once it waited twice robust's bound; longer teaches nothing more
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout", "keepalive")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s"),
    "naive": Expect("blocked"),
}
REMEMBER = "A vanished host says nothing: without a deadline of your own, recv() waits forever."
LOOK_FOR = ("After the fault only the client speaks: its data and retransmissions arrive at the server's interface, "
            "spaced ever wider, and nothing comes back. The lab's own stalled connection shows the other half: the "
            "server's kernel keeps probing its closed window, and those probes never leave the server. The DROP "
            "counters count both.")


def run(ctx):
    server_side = ctx.capture("server")
    client_side = ctx.capture("client")
    # Once nothing reaches the server, the subjects' connections give it nothing to send, so they
    # cannot show that OUTPUT drops too. This lab connection can: the server still owes it bytes.
    owed = StalledReply(SERVER_HOST, DEFAULT_PORT).open()
    ctx.on_cleanup(owed.close)      # registered before the fault: runs after the rules are gone
    handle = {}

    def fault():
        handle["vanish"] = ctx.apply("vanish", port=DEFAULT_PORT)

    ctx.side_by_side(converse(before=2, after=1), fault=fault)
    counts = handle["vanish"].counts(target="DROP")
    server_side.stop()
    client_side.stop()
    prove_inbound(ctx, server_side.pcap, counts["in"])
    prove_outbound(ctx, server_side.pcap, client_side.pcap, counts["out"], owed)


def prove_inbound(ctx, pcap, dropped_in):
    """In: the client's segments reached the server's interface (tcpdump sees them before
    INPUT) after the fault, and the INPUT rule dropped every one: the server's kernel never got them."""
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    ports = ctx.client_ports()
    arrived = {p: segments(pcap, win, dst_port=DEFAULT_PORT, peer_ports={p}) for p in sorted(ports)}
    seen_in = len(segments(pcap, win, dst_port=DEFAULT_PORT))
    ctx.prove("the client's segments reached the server after the fault, on every subject connection",
              len(ports) == len(ctx.judged) and all(arrived.values()),
              ", ".join(f":{p} sent {len(s)}" for p, s in arrived.items())
              + f" in {win.describe(ctx.fault_wall)} from the fault (server's interface)")
    ctx.prove("the INPUT rule dropped every one of them",
              seen_in > 0 and dropped_in >= seen_in,
              f"INPUT DROP matched {dropped_in} packets; {seen_in} arrived on the server's interface "
              f"in {win.describe(ctx.fault_wall)}")
    again = {p: resent(pcap, win, dst_port=DEFAULT_PORT, peer_ports={p}) for p in sorted(ports)}
    ctx.prove("the client's kernel kept trying: segments sent again after the fault",
              bool(again) and all(again.values()),
              ", ".join(f":{p} {len(s)} retransmissions or probes" for p, s in again.items()))


def prove_outbound(ctx, server_pcap, client_pcap, dropped_out, owed):
    """Out: the server's kernel still had bytes to send after the fault (on the lab's stalled
    connection), the OUTPUT rule dropped what it sent, and nothing of the server's reached the
    client: no data, no ACK, no FIN, no RST."""
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    watched = ctx.client_ports() | {owed.local_port}
    left = segments(server_pcap, win, src_port=DEFAULT_PORT, peer_ports=watched)
    ctx.prove("the OUTPUT rule dropped what the server's kernel still sent, and none of it left the server",
              owed.owed > 0 and dropped_out > 0 and not left,
              f"OUTPUT DROP matched {dropped_out} packets; the server owed {owed.owed} bytes on the lab's "
              f"stalled connection :{owed.local_port}; {len(left)} segments from :{DEFAULT_PORT} on the server's "
              f"interface in {win.describe(ctx.fault_wall)}")
    reached = segments(client_pcap, win, src_port=DEFAULT_PORT, peer_ports=watched)
    ctx.prove("nothing from the server reached the client after the fault",
              not reached and len(client_pcap.segments) > 0,
              f"{len(reached)} segments from :{DEFAULT_PORT} to the subjects or :{owed.local_port} in "
              f"{win.describe(ctx.fault_wall)} (client's interface; {len(client_pcap.segments)} captured in all)")
