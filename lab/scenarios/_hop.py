"""What the packet-mangling scenarios share: captures on both sides of the router, and the same
segment followed from one side to the other.

The router's lab side (``router-lab``) sees the clients' segments as they arrive and the
server's as they leave towards the clients; the server's interface sees them behind the
router. The NAT rewrites addresses, never ports or sequence numbers, so the two captures can
be compared by port and sequence number. Not segment for segment: a client hands the router
segments of up to 64 KiB (segmentation offload across the veth), which the router cuts into
MSS-sized ones before its packet handler sees them. So the comparisons are of byte ranges:
what the server got twice, or late, that the client sent once and in order (no retransmission
of the client's on the router's lab side explains it).
"""

from collections import Counter

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window, segments
from lab.evidence.streams import resent
from lab.inlab.workloads import converse


def data_segments(pcap, window, *, towards_server, ports):
    """The data segments of the subjects' connections going one way, in capture order."""
    if towards_server:
        found = segments(pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports)
    else:
        found = segments(pcap, window, src_port=DEFAULT_PORT, peer_ports=ports)
    return [s for s in sorted(found, key=lambda s: s.time_ns) if s.payload_len]


def key(s, towards_server):
    """A segment by what the NAT keeps: the client's port, the direction, its sequence number and length."""
    port = s.src.port if towards_server else s.dst.port
    return (port, s.seq, s.payload_len)


def copies(found, towards_server):
    return Counter(key(s, towards_server) for s in found)


def out_of_order(found, towards_server):
    """Segments that arrived after a later part of their own stream had (sequence numbers below the
    highest seen so far), and that were not seen before: reordered, not retransmitted."""
    highest, seen, late = {}, set(), []
    for s in found:
        port, seq, length = key(s, towards_server)
        if port in highest and (seq - highest[port]) % 2**32 > 2**31 and (port, seq, length) not in seen:
            late.append(s)
        end = (seq + length) % 2**32
        if port not in highest or (end - highest[port]) % 2**32 < 2**31:
            highest[port] = end
        seen.add((port, seq, length))
    return late


def window_from_fault(ctx):
    return Window(ctx.fault_wall, ctx.teardown_wall)


def exact_repeats(found, towards_server):
    """Per client port: segments whose exact range (sequence number and length) came before."""
    seen, out = set(), Counter()
    for s in found:
        k = key(s, towards_server)
        if k in seen:
            out[k[0]] += 1
        seen.add(k)
    return out


def client_resent(router_pcap, window, ports):
    """Per client port: what the client itself sent again, on the router's lab side (before the router)."""
    return {p: len([s for s in resent(router_pcap, window, dst_port=DEFAULT_PORT, peer_ports={p}) if s.payload_len])
            for p in ports}


def stream_end(found, port, towards_server):
    """The highest sequence number reached by ``port``'s data going that way (None if none), unwrapped
    from the first segment seen."""
    first, top = None, None
    for s in found:
        if key(s, towards_server)[0] != port:
            continue
        if first is None:
            first = s.seq
        end = (s.seq - first) % 2**32 + s.payload_len
        top = end if top is None else max(top, end)
    return top


def run_mangled(ctx, apply, prove, *, after, size):
    """Capture on both sides of the router, run ``converse(before=1, after=after, size=size)`` with
    ``apply()`` (the scenario's own ``ctx.apply(...)`` of the router's packet fault) after the first
    exchange, then ``prove`` each subject's connections: ``prove(ctx, router_pcap, server_pcap,
    counters)``, with the router handler's counters."""
    router_side = ctx.capture("router-lab")
    server_side = ctx.capture("server")
    handle = {}

    def fault():
        handle["f"] = apply()

    ctx.side_by_side(converse(before=1, after=after, size=size), fault=fault)
    counters = handle["f"].counters()
    router_side.stop()
    server_side.stop()
    ctx.prove_each(prove, router_side.pcap, server_side.pcap, counters)
