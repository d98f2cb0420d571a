"""Segments sent again: retransmissions and probes, found in the raw segments of a capture.

A kernel that gets no answer sends what it already sent once more (a retransmission), or a
segment just below what it sent (a keepalive or window probe). Either carries no sequence
space that is new on its connection. :func:`resent` picks those out of a window of time,
judging "new" against everything the capture saw that direction send before, also before
the window (the original of a retransmission usually precedes the fault)::

    again = resent(pcap, Window(ctx.fault_wall, ctx.teardown_wall), dst_port=7000, peer_ports=ports)

A capture can miss packets (tcpdump starved of CPU on a busy machine finds the kernel's
buffer full), so "sent again" found here is evidence, never a count to divide by.

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

from collections.abc import Collection

from lab.evidence.anchor import Window, segments
from lab.evidence.pcap import FIN, SYN, Endpoint, PcapFile, Segment

__all__ = ["resent"]

_MOD = 2**32
_HALF = 2**31
Stream = tuple[Endpoint, Endpoint]


def _length(s: Segment) -> int:
    """Sequence space the segment occupies: its payload, and one for SYN and for FIN."""
    return s.payload_len + (1 if s.has(SYN) else 0) + (1 if s.has(FIN) else 0)


def _relative(seq: int, base: int) -> int:
    """``seq`` relative to ``base``, signed (mod 2**32): a retransmission of bytes sent before the
    first captured segment comes out negative, not four gigabytes ahead."""
    return (seq - base + _HALF) % _MOD - _HALF


def resent(pcap: PcapFile, window: Window = Window(), *, src_port: int | None = None,
           dst_port: int | None = None, peer_ports: Collection[int] | None = None) -> list[Segment]:
    """The segments in ``window`` (selected as :func:`lab.evidence.anchor.segments` does) that add nothing new.

    A retransmission ends at or below the highest sequence number its direction had already
    sent; a probe starts below it (keepalive: one below, with at most one byte). A pure ACK
    at the current sequence number is neither, and is not counted.
    """
    chosen = {s.frame for s in segments(pcap, window, src_port=src_port, dst_port=dst_port, peer_ports=peer_ports)}
    highest: dict[Stream, int] = {}   # per direction: end of the sequence space sent so far, relative
    start: dict[Stream, int] = {}
    found = []
    for s in sorted(pcap.segments, key=lambda seg: seg.time_ns):
        key = (s.src, s.dst)
        rel = _relative(s.seq, start.setdefault(key, s.seq))
        end = rel + _length(s)
        top = highest.get(key)
        if s.frame in chosen and top is not None:
            if (_length(s) > 0 and end <= top) or (rel < top and _length(s) <= 1):
                found.append(s)
        highest[key] = end if top is None else max(top, end)
    return found

