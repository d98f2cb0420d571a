"""Delay with jitter on the path: each packet waits its own time at the router; TCP carries on, only slower."""

from statistics import median

from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _hop

NAME = "hop-jitter"
TITLE = "Per-packet delay with jitter"
HOWTO = "Using a Socket"
WIRE = """
The router holds each of the client's data segments for 100 ms, give or take 50 ms drawn
anew for every packet, before it forwards it. Unlike a proxy's latency, which delays a byte
stream, this delays packets: every round trip grows by the draw of its request's packet, and
the client's TCP sees a round-trip time that jumps around (its retransmission timer grows to
match). Nothing is lost and nothing fails: a deadline sized for the healthy path would.
"""
INJECTION = ("The router-agent queues the client's segments to the server (NFQUEUE) and its handler gives each "
             "data segment its verdict 100 ± 50 ms later (uniform, seeded).")
PATH = "direct"
WATCHDOG = 8.0
DELAY_MS, JITTER_MS, MESSAGES = 100.0, 50.0, 6
EXPECT = {
    "robust": Expect("completed", within=fixed(MESSAGES * (DELAY_MS + JITTER_MS) / 1000 + 1.0),
                     note="six round trips of at most 150 ms each at the router, plus slack"),
    "naive": Expect("completed", within=MESSAGES * (DELAY_MS + JITTER_MS) / 1000 + 1.0),
}
REMEMBER = "Jitter is not failure: deadlines must allow for the slowest healthy round trip, not the average."
LOOK_FOR = ("Each request leaves the router's lab side and reaches the server's interface 50 to 150 ms later, "
            "a different delay each time; the replies cross at once.")


def run(ctx):
    _hop.run_mangled(ctx, lambda: ctx.apply("hop-delay", way="to-server", delay_ms=DELAY_MS, jitter_ms=JITTER_MS),
                     prove_delayed, after=MESSAGES, size=100)


def crossing_ms(first, second, towards_server):
    """Per segment seen at both points (by client port, seq, length): ms from the first to the second."""
    at = {}
    for s in first:
        at.setdefault(_hop.key(s, towards_server), s.time_ns)
    return [(s.time_ns - at[_hop.key(s, towards_server)]) / 1e6 for s in second if _hop.key(s, towards_server) in at]


def prove_delayed(ctx, router_pcap, server_pcap, counters):
    window = _hop.window_from_fault(ctx)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, EXPECT)))
    there = crossing_ms(_hop.data_segments(router_pcap, window, towards_server=True, ports=ports),
                        _hop.data_segments(server_pcap, window, towards_server=True, ports=ports), True)
    low, high = DELAY_MS - JITTER_MS - 2, DELAY_MS + JITTER_MS + 25
    spread = max(there) - min(there) if there else 0.0
    # A held packet that a later one overtook (its draw was longer) is counted as reordered.
    held = counters.get("delayed", 0) + counters.get("reordered", 0)
    ctx.prove(f"each request spent {DELAY_MS:g} ± {JITTER_MS:g} ms crossing the router, a different time for each",
              len(there) >= MESSAGES * len(ports) and all(low <= d <= high for d in there) and spread >= 10
              and held >= len(there),
              f"{len(there)} requests, router's lab side to the server's interface: min {min(there, default=0):.1f}, "
              f"median {median(there) if there else 0:.1f}, max {max(there, default=0):.1f} ms (expected {low:g}-{high:g}, "
              f"spread at least 10 ms); the handler held {held} (of them overtaken: {counters.get('reordered', 0)})")
    back = crossing_ms(_hop.data_segments(server_pcap, window, towards_server=False, ports=ports),
                       _hop.data_segments(router_pcap, window, towards_server=False, ports=ports), False)
    ctx.prove("the replies crossed the router without delay",
              bool(back) and max(back) < 10,
              f"{len(back)} replies, server's interface to the router's lab side: max {max(back, default=0):.2f} ms")
