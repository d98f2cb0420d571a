"""A corrupted packet whose checksum no longer matches: TCP drops it, the sender resends, nothing is lost."""

from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _corrupt, _hop

NAME = "corrupt-bad-checksum"
TITLE = "Corrupted packet, checksum wrong"
HOWTO = "Using a Socket"
WIRE = """
One bit of one byte of the server's reply is flipped on the way, and nothing else changes:
the TCP checksum in the segment no longer matches its bytes. The client's kernel checks it,
counts the segment in InCsumErrors, and throws it away without acknowledging it. To the
server that segment is simply lost: it retransmits it after its retransmission timeout, and
the copy arrives intact. The application gets the right bytes, some 200 ms late.
"""
INJECTION = ("The router-agent queues the server's segments to the client (NFQUEUE) and its handler flips one bit "
             "of one payload byte of one reply, leaving the TCP checksum as it was.")
PATH = "direct"
WATCHDOG = 6.0
EXPECT = {
    "robust": Expect("completed", within=fixed(1.5), note="the server's retransmission timeout, 200 ms or more"),
    "naive": Expect("completed", within=1.5),
}
REMEMBER = "A wire that flips bits is caught by TCP's checksum: the segment is dropped and sent again."
LOOK_FOR = ("On the router's lab side the same reply segment twice, the first with bytes that differ from what the "
            "server's interface shows; the client's InCsumErrors counter grows by one.")


def run(ctx):
    _corrupt.run(ctx, "bad-checksum", EXPECT, prove)


def prove(ctx, changed, passed, intact, csum_errors):
    resent = [s for s in passed for c in changed if _hop.key(s, False) == _hop.key(c, False)
              and s.time_ns > c.time_ns and s.payload_crc == intact[_hop.key(s, False)]]
    ctx.prove("the client's kernel dropped the corrupt segment (bad checksum) and the server's retransmission "
              "reached it intact", csum_errors >= 1 and len(resent) >= 1,
              f"the client's Tcp InCsumErrors grew by {csum_errors}; {len(resent)} intact copies of the corrupted "
              "segment followed it on the router's lab side")
