"""What the two corruption scenarios share: the run, and the corrupted segment found on both sides of the router.

The router corrupts the server's echo on its way to the client (one segment). The server's
interface sees the segment as the server sent it, the router's lab side as the router passed
it on; the same segment (client port, sequence number, length) with different payload bytes
on the two sides is the corruption, seen.
"""

from lab.inlab.proofs import judged
from lab.inlab.workloads import converse
from lab.scenarios import _hop


def run(ctx, mode, expect, proofs):
    router_side = ctx.capture("router-lab")
    server_side = ctx.capture("server")
    before = ctx.client_agent.tcp_stats()["tcp"]
    handle = {}

    def fault():
        # Past the frame header (5 bytes) and the sequence number (8): a byte of the echoed body.
        handle["f"] = ctx.apply("corrupt", way="to-client", mode=mode, limit=1, offset=20)

    ctx.side_by_side(converse(before=2, after=1, size=200), fault=fault)
    counters = handle["f"].counters()
    after = ctx.client_agent.tcp_stats()["tcp"]
    router_side.stop()
    server_side.stop()
    csum_errors = after.get("InCsumErrors", 0) - before.get("InCsumErrors", 0)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, expect)))
    window = _hop.window_from_fault(ctx)
    sent = _hop.data_segments(server_side.pcap, window, towards_server=False, ports=ports)
    passed = _hop.data_segments(router_side.pcap, window, towards_server=False, ports=ports)
    intact = {(_hop.key(s, False)): s.payload_crc for s in sent}
    changed = [s for s in passed if _hop.key(s, False) in intact and s.payload_crc != intact[_hop.key(s, False)]]
    per_port = {p: sum(1 for s in changed if s.dst.port == p) for p in sorted(ports)}
    ctx.prove("the server sent its echo intact and the router passed it on with different bytes, once per "
              "subject connection",
              bool(ports) and set(per_port.values()) == {1} and counters.get("corrupted", 0) >= len(changed),
              f"per client port {per_port}: {len(changed)} segments whose bytes differ between the server's interface and the router's lab side "
              f"(client port, seq, length: {[_hop.key(s, False) for s in changed]}); the router's handler corrupted "
              f"{counters.get('corrupted', 0)}; window {window.describe(ctx.fault_wall)}")
    proofs(ctx, changed, passed, intact, csum_errors)
