"""The path reorders packets: segments overtake each other; TCP puts them back in order."""

from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _hop

NAME = "packet-reordering"
TITLE = "Reordered packets"
HOWTO = "Using a Socket"
WIRE = """
The router holds every second data segment from the client to the server and lets the next
one overtake it. The server's TCP receives a segment from beyond a gap, queues it out of
order, and ACKs only what is contiguous (a duplicate ACK with a SACK block); when the late
segment arrives it fills the gap and both are delivered, in order. The application reads
the bytes in the order they were sent. Only the timing shows it: a little extra delay.
"""
INJECTION = ("The router-agent queues the client's segments to the server (NFQUEUE) and its handler holds every "
             "second data segment until the next one has passed.")
PATH = "direct"
WATCHDOG = 10.0
MESSAGES, SIZE = 8, 4000       # each message is three segments in flight together: one can overtake another
EXPECT = {
    "robust": Expect("completed", within=fixed(3.0), note="8 round trips, each held up to 200 ms at most"),
    "naive": Expect("completed", within=3.0),
}
REMEMBER = "TCP delivers bytes in order whatever order the packets took."
LOOK_FOR = ("On the server's interface a segment with a higher sequence number arrives before a lower one that "
            "the router's lab side saw first; the server's ACKs show the gap and its closing.")


def run(ctx):
    _hop.run_mangled(ctx, lambda: ctx.apply("reorder", way="to-server", every=2), prove_reordered,
                     after=MESSAGES, size=SIZE)


def prove_reordered(ctx, router_pcap, server_pcap, counters):
    window = _hop.window_from_fault(ctx)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, EXPECT)))
    sent = _hop.data_segments(router_pcap, window, towards_server=True, ports=ports)
    got = _hop.data_segments(server_pcap, window, towards_server=True, ports=ports)
    # A segment the client sent twice (a retransmission after a loss, or a tail-loss probe while
    # the router held the original) proves nothing: only those it sent once, seen arriving behind a
    # later one, were reordered on the path. Excluding exactly those, not a count of resends, keeps
    # a probe of a held last segment from cancelling a real reordering elsewhere.
    resent = {k for k, n in _hop.copies(sent, True).items() if n > 1}
    late = [s for s in _hop.out_of_order(got, True) if _hop.key(s, True) not in resent]
    again = _hop.client_resent(router_pcap, window, ports)
    per_port = {p: sum(1 for s in late if s.src.port == p) for p in sorted(ports)}
    ok = bool(ports) and all(n > 0 for n in per_port.values()) and counters.get("reordered", 0) >= sum(per_port.values())
    ctx.prove("bytes the client sent in order reached the server out of order, on every subject connection", ok,
              f"per client port: segments the client sent once that arrived behind a later one "
              f"{per_port} (client resends on the router's lab side {again}); the router's handler reordered "
              f"{counters.get('reordered', 0)} of {counters.get('seen', 0)} queued; "
              f"window {window.describe(ctx.fault_wall)}")
    ends = {p: (_hop.stream_end(sent, p, True), _hop.stream_end(got, p, True)) for p in sorted(ports)}
    ctx.prove("nothing was lost on the way: each client's stream reached the server as far as it left the client",
              bool(ports) and all(a is not None and a == b for a, b in ends.values()),
              f"per client port, bytes after the fault (router's lab side, server): {ends}")
