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
LOOK_FOR = ("The SYN offers MSS 1460 on the router's lab side and 1160 on the server's interface; every data segment "
            "is at most 1160 bytes.")


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
    data = [s for s in segments(server_side.pcap, window, peer_ports=ports, dst_port=DEFAULT_PORT) if s.payload_len]
    back = [s for s in segments(server_side.pcap, window, peer_ports=ports, src_port=DEFAULT_PORT) if s.payload_len]
    largest = max((s.payload_len for s in data + back), default=0)
    ctx.prove("every data segment fit the small link, both ways, and the large messages crossed",
              bool(data) and bool(back) and largest <= fits and sum(s.payload_len for s in data) >= 2 * LARGE * len(ports),
              f"{len(data)} data segments to the server and {len(back)} back, the largest {largest} B (at most "
              f"{fits}); {sum(s.payload_len for s in data)} B reached the server")
