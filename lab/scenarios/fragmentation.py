"""The server's replies arrive cut into many small pieces (Toxiproxy slicer)."""

import statistics
import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window
from lab.evidence.legs import SERVER, connections
from lab.sockets import framing
from lab.inlab.scenario import Expect
from lab.inlab.workloads import converse

NAME = "fragmentation"
TITLE = "Fragmentation"
HOWTO = "Using a Socket"
WIRE = """
Toxiproxy cuts the server's byte stream into pieces of about 64 bytes and waits at least 200
microseconds between them (about a millisecond in practice: Go's timers sleep no shorter).
TCP still delivers every byte in order, but a 4 KiB reply now arrives in dozens of segments,
and each recv returns whatever has arrived so far. Framing code
that keeps reading until the length it was promised is complete is unaffected; code that
trusts one recv to hold one message returns a fragment.
"""
INJECTION = "A Toxiproxy slicer toxic (downstream, average_size 64 B, size_variation 32 B, delay 200 µs)."
PATH = "proxied"
SIZE = 4096
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE   # one reply's bytes on the wire
AFTER = 3                                               # replies after the fault, per connection
AVERAGE, VARIATION, DELAY_US = 64, 32, 200
SETTLE_S = 0.3     # a reply takes about 70 pieces × ~1.2 ms to arrive; hold each connection open that long
EXPECT = {
    "robust": Expect("completed", note="every reply whole"),
    "naive": Expect("completed", note="the length-prefixed loops reassemble the pieces"),
    "naive-single-recv": Expect("completed", corrupt=True, note="one recv returns a fragment of the reply"),
}
REMEMBER = "TCP is a byte stream: message boundaries are yours to keep, never the network's."
LOOK_FOR = "The 4 KiB replies arrive as dozens of ~64-byte segments, about a millisecond apart."


def worker(ctx, subject, outcome):
    converse(before=1, after=AFTER, size=SIZE)(ctx, subject, outcome)
    # Code that trusts one recv is done after the first pieces; its connection stays open while the
    # rest of its replies arrive, so the wire shows the slicing on every connection, whoever ran.
    time.sleep(SETTLE_S)


def run(ctx):
    capture = ctx.capture("client")
    ctx.side_by_side(worker,
                     fault=lambda: ctx.apply("slicer", average_size=AVERAGE, size_variation=VARIATION,
                                             delay=DELAY_US))
    if "robust" in ctx.impls:   # how it looked to robust's reads: a fact, not a proof (a small buffer would fake it)
        ctx.facts["robust_recv_calls"] = ctx.outcomes["robust"].measurements.get("recv_calls", 0)
    capture.stop()
    prove_pieces(ctx, capture.pcap)


def prove_pieces(ctx, pcap):
    """The proxy's segments to each subject after the fault: their sizes, how many per reply, how far apart."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    subjects = connections(pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    largest = AVERAGE + VARIATION
    oks, details = [], []
    for conn in subjects:
        pieces = conn.sent(SERVER, window, data=True)
        sizes = [s.payload_len for s in pieces]
        total = sum(sizes)
        median = statistics.median(sizes) if sizes else 0
        gaps = conn.gaps(SERVER, window)
        gap = statistics.median(gaps) if gaps else 0.0
        per_reply = len(sizes) / (total / FRAME) if total else 0.0
        # At least one whole reply's worth on every connection: SETTLE_S gives even a client that stopped
        # reading early that much, without counting on the pace of a loaded machine for all three.
        oks.append(total >= FRAME and AVERAGE - VARIATION <= median <= largest
                   and per_reply >= FRAME / largest and gap >= DELAY_US / 1e6)
        details.append(f"{conn.client}: {total} bytes in {len(sizes)} segments ({per_reply:.0f} per reply), "
                       f"sizes {min(sizes, default=0)}–{max(sizes, default=0)} B (median {median:g}), "
                       f"median gap {gap * 1e6:.0f} µs")
    ctx.prove(f"on the wire the proxy sent the replies in pieces of {AVERAGE}±{VARIATION} B, "
              f"at least {FRAME / largest:.0f} per reply, {DELAY_US} µs or more apart",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} "
              f"(expected ≥ {FRAME} B per connection, of {AFTER} replies of {FRAME} B; "
              f"window {window.describe(ctx.fault_wall)})")
