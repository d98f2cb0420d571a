"""The same small link with MSS clamping: the router fixes every handshake, and large messages pass."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import ACK, SYN, Window, segments
from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "pmtu-clamped"
TITLE = "Small link, MSS clamped"
HOWTO = "Using a Socket"
WIRE = """
The control case of the path MTU black hole: the same 1200-byte link and the same dropped
ICMP, but the router rewrites the MSS option of every SYN it forwards to 1160 bytes (MSS
clamping, what home routers and VPN gateways do). Each side then sends segments that fit the
smallest link, however large the message, and nothing is ever too big to forward.
"""
INJECTION = ("The router-agent sets its backend link's MTU to 1200, drops its fragmentation-needed ICMP, and "
             "clamps the MSS of every SYN it forwards to 1160 (iptables TCPMSS); then the clients connect.")
PATH = "direct"
WATCHDOG = 6.0
MTU, LARGE = 1200, 6000
EXPECT = {
    "robust": Expect("completed", within=fixed(2.0), note="a few round trips on a healthy path"),
    "naive": Expect("completed", within=2.0),
}
REMEMBER = "MSS clamping makes a small link invisible: every segment fits."
LOOK_FOR = ("The SYN offers MSS 1460 on the router's lab side and 1160 on the server's interface; the SYN-ACK "
            "reaches the client offering 1160 as well.")


def worker(ctx, subject, outcome):
    subject.connect()
    for seq in (1, 2):
        ctx.exchange(subject, outcome, body(seq, LARGE))


def run(ctx):
    router_side = ctx.capture("router-lab")
    server_side = ctx.capture("server")
    ctx.apply("pmtu", mtu=MTU, clamp=True)      # before anyone connects: clamping rewrites handshakes
    ctx.side_by_side(worker)
    router_side.stop()
    server_side.stop()
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, EXPECT)))
    fits = MTU - 40
    offered = {s.src.port: s.mss for s in segments(router_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports,
                                                    flags=SYN) if not s.has(ACK)}
    clamped = {s.src.port: s.mss for s in segments(server_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports,
                                                    flags=SYN) if not s.has(ACK)}
    ctx.prove(f"the router rewrote each client's SYN to offer MSS {fits}",
              bool(ports) and set(offered) >= ports and all(clamped.get(p) == fits and (offered[p] or 0) > fits
                                                            for p in ports),
              f"MSS offered at the router's lab side {offered}, at the server's interface {clamped}")
    # Both ways: the server's SYN-ACK, as the client got it, offers the clamped MSS too. (The sizes
    # captured on a veth are no measure: offload hands over segments of up to 64 KiB, cut to the
    # agreed MSS only where a real wire would be.)
    answered = {s.dst.port: s.mss for s in segments(router_side.pcap, window, src_port=DEFAULT_PORT, peer_ports=ports,
                                                     flags=SYN | ACK)}
    data = sum(s.payload_len for s in segments(server_side.pcap, window, peer_ports=ports, dst_port=DEFAULT_PORT))
    back = sum(s.payload_len for s in segments(router_side.pcap, window, peer_ports=ports, src_port=DEFAULT_PORT))
    ctx.prove("the server's SYN-ACK was clamped as well, and the large messages crossed both ways",
              bool(ports) and all(answered.get(p) == fits for p in ports) and data >= 2 * LARGE * len(ports)
              and back >= 2 * LARGE * len(ports),
              f"MSS in the SYN-ACK at the router's lab side {answered}; {data} B of data reached the server, "
              f"{back} B came back to the clients (at least {2 * LARGE} each way per client)")
