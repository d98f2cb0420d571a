"""A corrupted packet with a recomputed checksum: TCP delivers the wrong byte; only the application can notice."""

from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _corrupt, _hop

NAME = "corrupt-recomputed"
TITLE = "Corrupted packet, checksum fixed up"
HOWTO = "Using a Socket"
WIRE = """
One bit of one byte of the server's reply is flipped on the way, and the TCP checksum is
recomputed to match, as a broken middlebox, a buggy NIC offload or a bad router's memory
can do. Every check TCP has passes: the segment is acknowledged and its corrupt byte is
delivered to the application as if the server had sent it. TCP's 16-bit checksum protects
the hop, not the path. Only an application that checks what it received finds out.
"""
INJECTION = ("The router-agent queues the server's segments to the client (NFQUEUE) and its handler flips one bit "
             "of one payload byte of one reply and recomputes the TCP checksum.")
PATH = "direct"
WATCHDOG = 6.0
EXPECT = {
    "robust": Expect("error", ("ProtocolError",), within=fixed(0.5),
                     note="it compares every echo with what it sent"),
    "naive": Expect("completed", within=0.5, corrupt=True, note="it returns what came: one byte wrong"),
}
REMEMBER = "TCP's checksum does not protect you from a broken middlebox: check your data end to end."
LOOK_FOR = ("The reply segment's bytes differ between the server's interface and the router's lab side, once, and "
            "the client acknowledges it: no retransmission, no checksum error.")


def run(ctx):
    _corrupt.run(ctx, "recompute", EXPECT, prove)


def prove(ctx, changed, passed, intact, csum_errors):
    again = [s for s in passed for c in changed if _hop.key(s, False) == _hop.key(c, False) and s.time_ns > c.time_ns]
    ctx.prove("the client's TCP took the corrupt segment as good: no checksum error, no retransmission",
              bool(changed) and csum_errors == 0 and not again,
              f"the client's Tcp InCsumErrors grew by {csum_errors}; {len(again)} later copies of the corrupted "
              "segment on the router's lab side")
