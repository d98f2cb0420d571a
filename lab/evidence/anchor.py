"""Evidence anchored to a fault: the packets of the connections under test, in a window of time, per direction.

A proof that counts "any RST" or "the last packet" can be satisfied by a healthy run: the
teardown's FIN, an RST after the client's own close, another connection's traffic. So a
fault proof asks narrower questions, and this module answers them from the raw segments:

* **when**: between the moment the fault was in place and the moment the lab began to
  close the subjects (both wall-clock seconds, the clock tcpdump stamps packets with: the
  runner's ``ctx.fault_wall`` and ``ctx.teardown_wall``);
* **which connection**: the subjects' own client ports (``ctx.client_ports()``), or a server
  port for the proxy-to-server leg;
* **which direction**: segments *from* the server port, or *to* it;
* **how much**: counts and byte totals the caller compares with the fault's magnitude::

    win = Window(ctx.fault_wall, ctx.teardown_wall)
    from_server = segments(pcap, win, src_port=7000, peer_ports=ports)
    assert not any(s.has(RST) for s in from_server)

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable

from lab.evidence.pcap import ACK, FIN, PSH, RST, SYN, PcapFile, Segment

__all__ = ["Window", "segments", "payload_bytes", "first", "FIN", "SYN", "RST", "ACK", "PSH"]


@dataclasses.dataclass(frozen=True)
class Window:
    """[start, end) in wall-clock seconds; ``None`` leaves that side open."""

    start: float | None = None
    end: float | None = None

    def holds(self, segment: Segment) -> bool:
        t = segment.time_ns / 1e9
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def describe(self, origin: float | None = None) -> str:
        """The window in words, relative to ``origin`` (e.g. the fault) when given."""
        def at(t: float | None) -> str:
            if t is None:
                return "open"
            return f"{t - origin:+.3f} s" if origin is not None else f"{t:.3f}"
        return f"[{at(self.start)}, {at(self.end)})"


def segments(pcap: PcapFile, window: Window = Window(), *, src_port: int | None = None,
             dst_port: int | None = None, peer_ports: Collection[int] | None = None,
             flags: int = 0) -> list[Segment]:
    """The segments in ``window``, from ``src_port`` and/or to ``dst_port``, carrying all ``flags``.

    ``peer_ports`` keeps only segments whose *other* end (the one that is not ``src_port`` /
    ``dst_port``) is one of those ports: the connections under test, not their neighbours.
    """
    out = []
    for s in pcap.segments:
        if src_port is not None and s.src.port != src_port:
            continue
        if dst_port is not None and s.dst.port != dst_port:
            continue
        if peer_ports is not None:
            other = s.dst.port if src_port is not None else s.src.port
            if other not in peer_ports:
                continue
        if flags and s.flags & flags != flags:
            continue
        if window.holds(s):
            out.append(s)
    return out


def payload_bytes(found: Iterable[Segment]) -> int:
    """Payload bytes on the wire, retransmissions included."""
    return sum(s.payload_len for s in found)


def first(found: Iterable[Segment], flag: int) -> Segment | None:
    """The earliest segment that carries ``flag``."""
    return min((s for s in found if s.flags & flag), key=lambda s: s.time_ns, default=None)
