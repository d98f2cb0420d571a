"""The server's replies arrive cut into many small pieces (Toxiproxy slicer)."""

from lab.inlab.scenario import Expect
from lab.inlab.workloads import converse

NAME = "fragmentation"
TITLE = "Fragmentation"
HOWTO = "Using a Socket"
WIRE = """
Toxiproxy cuts the server's byte stream into pieces of about 64 bytes and sends them 200
microseconds apart. TCP still delivers every byte in order, but a 4 KiB reply now arrives
in dozens of segments, and each recv returns whatever has arrived so far. Framing code
that keeps reading until the length it was promised is complete is unaffected; code that
trusts one recv to hold one message returns a fragment.
"""
INJECTION = "A Toxiproxy slicer toxic (downstream, average_size 64 B, size_variation 32 B, delay 200 µs)."
PATH = "proxied"
SIZE = 4096
EXPECT = {
    "robust": Expect("completed", note="every reply whole"),
    "naive": Expect("completed", note="the length-prefixed loops reassemble the pieces"),
    "naive-single-recv": Expect("completed", corrupt=True, note="one recv returns a fragment of the reply"),
}
REMEMBER = "TCP is a byte stream: message boundaries are yours to keep, never the network's."
LOOK_FOR = "The 4 KiB replies arrive as dozens of ~64-byte segments a fraction of a millisecond apart."


def run(ctx):
    ctx.side_by_side(converse(before=1, after=3, size=SIZE),
                     fault=lambda: ctx.apply("slicer", average_size=64, size_variation=32, delay=200))
    recvs = ctx.outcomes["robust"].measurements.get("recv_calls", 0) if "robust" in ctx.impls else 0
    ctx.prove("replies arrived in many pieces (robust needed many recv calls)", recvs >= 3 * SIZE // 256,
              f"{recvs} recv calls for 4 replies of {SIZE} bytes")
