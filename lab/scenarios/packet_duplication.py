"""The path duplicates packets: the server gets some segments twice; TCP hides it."""

from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _hop

NAME = "packet-duplication"
TITLE = "Duplicated packets"
HOWTO = "Using a Socket"
WIRE = """
The router sends every second data segment from the client to the server twice: the
original, and an exact copy right behind it. The server's TCP sees the same bytes twice,
keeps one copy and answers the other at once with a duplicate ACK that carries a D-SACK
block ("that was a duplicate"). The application reads every byte once, in order: TCP's
sequence numbers make duplicates harmless. A protocol over UDP would have to do this itself.
"""
INJECTION = ("The router-agent queues the client's segments to the server (NFQUEUE) and its handler sends every "
             "second data segment twice (a copy through a raw socket).")
PATH = "direct"
WATCHDOG = 10.0
MESSAGES, SIZE = 8, 4000       # each message is three segments in flight together
EXPECT = {
    "robust": Expect("completed", within=fixed(2.0), note="8 round trips on a healthy path"),
    "naive": Expect("completed", within=2.0),
}
REMEMBER = "TCP delivers each byte once: a duplicate on the wire costs an ACK, never your data."
LOOK_FOR = ("On the server's interface some segments appear twice with the same sequence number and length, "
            "a few microseconds apart; on the router's lab side each appears once.")


def run(ctx):
    _hop.run_mangled(ctx, lambda: ctx.apply("duplicate", way="to-server", every=2), prove_duplicated,
                     after=MESSAGES, size=SIZE)


def prove_duplicated(ctx, router_pcap, server_pcap, counters):
    window = _hop.window_from_fault(ctx)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, EXPECT)))
    got = _hop.data_segments(server_pcap, window, towards_server=True, ports=ports)
    twice = _hop.exact_repeats(got, True)
    again = _hop.client_resent(router_pcap, window, ports)
    extra = {p: twice.get(p, 0) - again.get(p, 0) for p in sorted(ports)}
    ok = bool(ports) and all(n > 0 for n in extra.values()) and counters.get("duplicated", 0) >= sum(extra.values())
    ctx.prove("segments the client sent once reached the server twice, on every subject connection", ok,
              f"per client port: ranges the server got twice {dict(twice)}, that the client itself sent again "
              f"(router's lab side) {again}; the router's handler duplicated {counters.get('duplicated', 0)} of "
              f"{counters.get('seen', 0)} queued; window {window.describe(ctx.fault_wall)}")
    back = _hop.data_segments(router_pcap, window, towards_server=False, ports=ports)
    ctx.prove("the way back was left alone: no segment from the server reached the clients twice",
              bool(back) and not _hop.exact_repeats(back, False),
              f"{len(back)} data segments from the server on the router's lab side, "
              f"{sum(_hop.exact_repeats(back, False).values())} of them repeats")
