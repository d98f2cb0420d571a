"""Packet evidence: read a tcpdump capture and say what happened on each TCP connection.

A scenario claims a fault ("the server's kernel answered with RST", "nothing
came back while the link was cut", "the frozen peer's kernel still answered
keepalives"). This module checks the claim against the packets themselves. The
lab's agents capture with::

    tcpdump -U -i eth0 -w /captures/server.pcap -Z root 'tcp port 7000'

and the scenario (or a student) reads the file back::

    from lab.evidence import summarize, render

    summary = summarize(Path("server.pcap").read_bytes(), server_port=7000)
    conn = summary.connections_to(7000)[0]
    assert conn.server_to_client.rst.count == 1          # an RST really was sent
    assert conn.client_to_server.payload_bytes == 3000   # exactly 3000 bytes before the cut
    print(render(summary))                               # readable without Wireshark

or from a shell: ``python -m lab.evidence server.pcap --server-port 7000 [--json]``.

Reading the file is :mod:`lab.evidence.pcap` (which formats and link types,
and :class:`~lab.evidence.pcap.CaptureError` for a broken one); the text form
is :mod:`lab.evidence.text`; this module is the analysis and its result types.

What is reported, per connection (a 4-tuple; a new SYN with a new ISN on a
finished 4-tuple starts a new connection) and per direction, client→server
and server→client: SYN / SYN-ACK / FIN / RST counts with the time of the first;
unique payload bytes (a retransmitted byte counts once); retransmissions (a
segment carrying payload whose sequence range was already seen); keepalive
probes (zero or one byte at seq = snd.una - 1 while everything sent is
acknowledged: RFC 1122 4.2.3.6 as Linux does it) and how many the peer
answered; zero-window advertisements; window probes; duplicate ACKs
(RFC 5681's definition); and a timeline of notable events. The client is the
side that sent the SYN; without a captured handshake, the side on
``server_port``; failing that, a guess (the lower port) that the summary says
is a guess. Times are seconds since the capture's first frame; sequence numbers
are relative (the first data byte is 1 when the SYN was captured). Sequence
arithmetic assumes less than 2 GiB per direction, plenty for the lab.

Standard library only: this runs inside the lab's minimal containers.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lab.evidence.pcap import ACK, FIN, LINK_NAMES, RST, SYN, Endpoint, Segment, read_capture

__all__ = [
    "FlagStat", "DirectionSummary", "Event", "ConnectionSummary", "CaptureSummary",
    "summarize", "summarize_file", "summary_from_dict", "TcpdumpStats", "tcpdump_stats",
]


# --------------------------------------------------------------------------- summary types

Direction = Literal["c2s", "s2c"]


@dataclass
class FlagStat:
    """How many segments carried a flag, and when the first did (seconds since capture start)."""

    count: int = 0
    first: float | None = None

    def note(self, t: float) -> None:
        self.count += 1
        if self.first is None:
            self.first = t


@dataclass
class DirectionSummary:
    """What one side sent. Byte and sequence facts are in this direction's sequence space."""

    sender: Endpoint
    receiver: Endpoint
    packets: int = 0
    syn: FlagStat = field(default_factory=FlagStat)       # SYN without ACK
    syn_ack: FlagStat = field(default_factory=FlagStat)
    fin: FlagStat = field(default_factory=FlagStat)
    rst: FlagStat = field(default_factory=FlagStat)
    payload_bytes: int = 0             # unique: a retransmitted byte counts once
    retransmissions: int = 0
    retransmitted_bytes: int = 0
    keepalive_probes: int = 0
    keepalive_answered: int = 0        # probes the peer ACKed (its kernel is alive)
    zero_windows: int = 0              # segments advertising a zero receive window
    window_probes: int = 0
    duplicate_acks: int = 0
    acked_bytes: int | None = None     # payload bytes the peer acknowledged; None if unknowable
    first_packet: float | None = None
    last_packet: float | None = None
    first_data: float | None = None
    last_data: float | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            if isinstance(value, FlagStat):
                out[name] = {"count": value.count, "first": value.first}
            elif isinstance(value, Endpoint):
                out[name] = str(value)
            else:
                out[name] = value
        return out


@dataclass(frozen=True)
class Event:
    """One line of a connection's timeline."""

    t: float                 # seconds since the capture's first frame
    direction: Direction
    what: str                # SYN, SYN-ACK, FIN, RST, zero-window, window-open, retransmission,
                             # keepalive probe, keepalive answered, window probe, first data, last data
    seq: int | None = None   # relative sequence number in the sender's space
    length: int = 0          # payload bytes in the segment

    def as_dict(self) -> dict[str, object]:
        return {"t": self.t, "direction": self.direction, "what": self.what, "seq": self.seq,
                "length": self.length}


RolesFrom = Literal["syn", "syn-ack", "server-port", "guess"]


@dataclass
class ConnectionSummary:
    index: int                       # 1-based, in order of first appearance
    client: Endpoint
    server: Endpoint
    roles_from: RolesFrom            # how we decided who is the client
    client_to_server: DirectionSummary
    server_to_client: DirectionSummary
    outcome: str = "open"            # refused, no answer, reset by client/server, closed, half-closed by ..., open
    timeline: list[Event] = field(default_factory=list)

    def direction(self, name: Direction) -> DirectionSummary:
        return self.client_to_server if name == "c2s" else self.server_to_client

    def events(self, what: str, direction: Direction | None = None) -> list[Event]:
        return [e for e in self.timeline if e.what == what and direction in (None, e.direction)]

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index, "client": str(self.client), "server": str(self.server),
            "roles_from": self.roles_from, "outcome": self.outcome,
            "client_to_server": self.client_to_server.as_dict(),
            "server_to_client": self.server_to_client.as_dict(),
            "timeline": [e.as_dict() for e in self.timeline],
        }


@dataclass
class CaptureSummary:
    link_type: str
    nanosecond: bool
    byte_order: str
    frames: int
    tcp_segments: int
    skipped: dict[str, int]
    start: float | None          # epoch seconds of the first frame
    duration: float              # seconds from the first to the last frame
    connections: list[ConnectionSummary]

    def connections_to(self, port: int) -> list[ConnectionSummary]:
        """The connections whose server listens on ``port``."""
        return [c for c in self.connections if c.server.port == port]

    def as_dict(self) -> dict[str, object]:
        return {
            "link_type": self.link_type, "nanosecond": self.nanosecond, "byte_order": self.byte_order,
            "frames": self.frames, "tcp_segments": self.tcp_segments, "skipped": dict(self.skipped),
            "start": self.start, "duration": self.duration,
            "connections": [c.as_dict() for c in self.connections],
        }


# --------------------------------------------------------------------------- analysis

class _Ranges:
    """Sorted, merged half-open sequence ranges already seen in one direction."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> int:
        """Record [start, end); return how many of its bytes had not been seen before."""
        i = bisect.bisect_left(self._ends, start)       # first range ending at or after start
        j = bisect.bisect_right(self._starts, end)      # ranges i..j-1 touch or overlap [start, end)
        seen = sum(max(0, min(end, e) - max(start, s)) for s, e in zip(self._starts[i:j], self._ends[i:j]))
        merged_start = min([start, *self._starts[i:j]])
        merged_end = max([end, *self._ends[i:j]])
        self._starts[i:j], self._ends[i:j] = [merged_start], [merged_end]
        return (end - start) - seen

    @property
    def end(self) -> int | None:
        return self._ends[-1] if self._ends else None


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


class _Side:
    """One direction's running state while a connection's segments are replayed in order.

    Sequence numbers here are relative to this direction's ISN (or, without a
    captured SYN, to the first sequence number seen, minus one).
    """

    def __init__(self, name: Direction, stats: DirectionSummary) -> None:
        self.name = name
        self.stats = stats
        self.base: int | None = None
        self.isn_seen = False
        self.snd_nxt: int | None = None       # highest seq + len (+SYN, +FIN) this side sent
        self.peer_ack: int | None = None      # highest ACK the peer sent for this side's data
        self.peer_window: int | None = None   # the window the peer last advertised to this side
        self.data = _Ranges()
        self.window_zero = False              # is this side currently advertising a zero window?
        self.last_ack: int | None = None      # the ACK and window of this side's previous segment
        self.last_window: int | None = None
        self.pending_probe: int | None = None  # seq of a keepalive probe not yet answered
        self.last_data: Event | None = None
        self.last_data_frame = 0

    def rel(self, value: int) -> int:
        if self.base is None:
            self.base = (value - 1) & 0xFFFFFFFF
        return _signed32(value - self.base)

    def send(self, seg: Segment, t: float, peer: _Side) -> list[Event]:
        """Account for one segment this side sent; return the timeline events it makes."""
        stats = self.stats
        stats.packets += 1
        stats.first_packet = t if stats.first_packet is None else stats.first_packet
        stats.last_packet = t
        if seg.has(SYN) and not self.isn_seen:
            self.base, self.isn_seen = seg.seq, True
        seq = self.rel(seg.seq)
        events = self._flags(seg, t, seq)
        probe = False
        if not seg.has(RST):   # an RST moves no data, and its window means nothing (Linux sends 0)
            events += self._window(seg, t)
            probe, payload_events = self._payload(seg, t, seq)
            events += payload_events
            peer.peer_window = seg.window
            end = seq + seg.payload_len + seg.has(SYN) + seg.has(FIN)
            self.snd_nxt = end if self.snd_nxt is None else max(self.snd_nxt, end)
        if seg.has(ACK):
            events += self._ack(seg, t, peer, probe)
        return events

    def _event(self, t: float, what: str, seq: int | None = None, length: int = 0) -> Event:
        return Event(t, self.name, what, seq, length)

    def _flags(self, seg: Segment, t: float, seq: int) -> list[Event]:
        events = []
        if seg.has(SYN):
            stat, what = (self.stats.syn_ack, "SYN-ACK") if seg.has(ACK) else (self.stats.syn, "SYN")
            stat.note(t)
            events.append(self._event(t, what, seq))
        if seg.has(FIN):
            self.stats.fin.note(t)
            events.append(self._event(t, "FIN", seq + seg.payload_len))
        if seg.has(RST):
            self.stats.rst.note(t)
            events.append(self._event(t, "RST", seq))
        return events

    def _window(self, seg: Segment, t: float) -> list[Event]:
        # The timeline shows transitions; the count is every zero-window segment.
        if seg.window == 0:
            self.stats.zero_windows += 1
            if not self.window_zero:
                self.window_zero = True
                return [self._event(t, "zero-window")]
        elif self.window_zero:
            self.window_zero = False
            return [self._event(t, "window-open")]
        return []

    def _is_probe_shaped(self, seg: Segment, seq: int) -> bool:
        # RFC 1122 4.2.3.6 as Linux does it (and Linux's zero-window probe looks
        # the same): no SYN/FIN, 0 or 1 byte at seq = snd.una - 1, sent when all
        # data is acknowledged. A normal segment never starts below snd.nxt
        # unless it is a retransmission, and then data is outstanding.
        return (not seg.has(SYN | FIN) and seg.payload_len <= 1 and self.snd_nxt is not None
                and seq == self.snd_nxt - 1 and (self.peer_ack is None or self.peer_ack >= self.snd_nxt))

    def _payload(self, seg: Segment, t: float, seq: int) -> tuple[bool, list[Event]]:
        """Classify the segment's data; return (was it a probe, events)."""
        stats = self.stats
        if self._is_probe_shaped(seg, seq):
            if self.peer_window == 0:
                stats.window_probes += 1
                return True, [self._event(t, "window probe", seq, seg.payload_len)]
            stats.keepalive_probes += 1
            self.pending_probe = seq
            return True, [self._event(t, "keepalive probe", seq, seg.payload_len)]
        if seg.payload_len == 0:
            return False, []
        start = seq + seg.has(SYN)          # data on a SYN (TCP Fast Open) starts after the SYN
        new = self.data.add(start, start + seg.payload_len)
        events = []
        window_probe = not seg.has(SYN | FIN) and seg.payload_len == 1 and self.peer_window == 0
        if window_probe:                    # BSD and Windows push one byte into a closed window
            stats.window_probes += 1
            events.append(self._event(t, "window probe", start, 1))
        elif new < seg.payload_len:
            stats.retransmissions += 1
            stats.retransmitted_bytes += seg.payload_len - new
            events.append(self._event(t, "retransmission", start, seg.payload_len))
        if new:
            stats.payload_bytes += new
            if stats.first_data is None:
                stats.first_data = t
                events.append(self._event(t, "first data", start, seg.payload_len))
            stats.last_data = t
            self.last_data = self._event(t, "last data", start, seg.payload_len)
            self.last_data_frame = seg.frame
        return window_probe, events

    def _ack(self, seg: Segment, t: float, peer: _Side, probe: bool) -> list[Event]:
        """This segment's ACK field, which speaks about the peer's sequence space."""
        ack = peer.rel(seg.ack)
        events = []
        answers_probe = peer.pending_probe is not None and ack == peer.pending_probe + 1
        if answers_probe:
            peer.stats.keepalive_answered += 1
            peer.pending_probe = None
            events.append(self._event(t, "keepalive answered", self.rel(seg.seq)))
        elif self._is_duplicate_ack(seg, ack, peer, probe):
            self.stats.duplicate_acks += 1
        peer.peer_ack = ack if peer.peer_ack is None else max(peer.peer_ack, ack)
        self.last_ack, self.last_window = ack, seg.window
        return events

    def _is_duplicate_ack(self, seg: Segment, ack: int, peer: _Side, probe: bool) -> bool:
        # RFC 5681 section 2: no data, no SYN/FIN, same ACK and same window as
        # before, and the peer has data outstanding. The window must be open: a
        # zero-window ACK repeated is backpressure, not loss.
        return (not probe and seg.payload_len == 0 and not seg.has(SYN | FIN | RST)
                and self.last_ack == ack and self.last_window == seg.window and seg.window != 0
                and peer.snd_nxt is not None and peer.snd_nxt > ack)

    def finish(self) -> None:
        if self.isn_seen and self.peer_ack is not None:
            # Data starts at relative seq 1; an ACK past the data end covers the FIN.
            data_end = self.data.end if self.data.end is not None else 1
            self.stats.acked_bytes = max(0, min(self.peer_ack, data_end) - 1)


@dataclass
class _Group:
    segments: list[Segment] = field(default_factory=list)
    isns: dict[Endpoint, int] = field(default_factory=dict)
    fins: set[Endpoint] = field(default_factory=set)
    reset: bool = False

    def finished(self) -> bool:
        return self.reset or len(self.fins) == 2

    def add(self, seg: Segment) -> None:
        self.segments.append(seg)
        if seg.has(SYN) and not seg.has(ACK):
            self.isns.setdefault(seg.src, seg.seq)
        if seg.has(FIN):
            self.fins.add(seg.src)
        if seg.has(RST):
            self.reset = True


def _split_connections(segments: Sequence[Segment]) -> list[_Group]:
    """Group segments by 4-tuple; a SYN that is not a retransmission of the one seen starts anew."""
    groups: list[_Group] = []
    current: dict[tuple[Endpoint, Endpoint], _Group] = {}
    for seg in segments:
        key = (min(seg.src, seg.dst), max(seg.src, seg.dst))
        group = current.get(key)
        if group is not None and seg.has(SYN) and not seg.has(ACK):
            same_syn = group.isns.get(seg.src) == seg.seq
            if group.finished() or not same_syn:
                group = None   # port reuse: a new conversation on the same 4-tuple
        if group is None:
            group = current[key] = _Group()
            groups.append(group)
        group.add(seg)
    return groups


def _roles(segments: Sequence[Segment], server_port: int | None) -> tuple[Endpoint, Endpoint, RolesFrom]:
    """Who is (client, server), and how we know."""
    for seg in segments:
        if seg.has(SYN) and not seg.has(ACK):
            return seg.src, seg.dst, "syn"
    for seg in segments:
        if seg.has(SYN) and seg.has(ACK):
            return seg.dst, seg.src, "syn-ack"
    first, second = segments[0].src, segments[0].dst
    if server_port is not None and (first.port == server_port) != (second.port == server_port):
        return (second, first, "server-port") if first.port == server_port else (first, second, "server-port")
    # Ephemeral client ports are high: the lower port is probably the service.
    if first.port < second.port:
        return second, first, "guess"
    return first, second, "guess"


def _outcome(c2s: DirectionSummary, s2c: DirectionSummary) -> str:
    if c2s.syn.count and not s2c.syn_ack.count:
        if s2c.rst.count:
            return "refused"
        if not s2c.packets:
            return "no answer"
    resets = [(stat.first, who) for stat, who in ((c2s.rst, "client"), (s2c.rst, "server")) if stat.count]
    if resets:
        return f"reset by {min(resets, key=lambda r: r[0] or 0.0)[1]}"
    if c2s.fin.count and s2c.fin.count:
        return "closed"
    if c2s.fin.count or s2c.fin.count:
        return f"half-closed by {'client' if c2s.fin.count else 'server'}"
    return "open"


def _analyse(index: int, group: _Group, server_port: int | None, t0: int) -> ConnectionSummary:
    client, server, roles_from = _roles(group.segments, server_port)
    c2s, s2c = DirectionSummary(client, server), DirectionSummary(server, client)
    sides = {"c2s": _Side("c2s", c2s), "s2c": _Side("s2c", s2c)}
    keyed: list[tuple[int, int, Event]] = []   # (frame, order within frame, event): "last data" goes in place
    for seg in group.segments:
        me, peer = (sides["c2s"], sides["s2c"]) if seg.src == client else (sides["s2c"], sides["c2s"])
        for n, event in enumerate(me.send(seg, (seg.time_ns - t0) / 1e9, peer)):
            keyed.append((seg.frame, n, event))
    for side in sides.values():
        side.finish()
        if side.last_data is not None:
            keyed.append((side.last_data_frame, 1_000, side.last_data))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return ConnectionSummary(index, client, server, roles_from, c2s, s2c, _outcome(c2s, s2c),
                             [event for _, _, event in keyed])


def summarize(data: bytes, *, server_port: int | None = None) -> CaptureSummary:
    """Read a classic pcap held in memory and summarize every TCP connection in it.

    ``server_port`` decides who is the server when a connection's handshake was
    not captured. Raises :class:`CaptureError` if the file's structure is broken.
    """
    capture = read_capture(data)
    t0 = capture.first_ns or 0
    connections = [_analyse(i, group, server_port, t0)
                   for i, group in enumerate(_split_connections(capture.segments), start=1)]
    return CaptureSummary(
        link_type=LINK_NAMES[capture.link_type], nanosecond=capture.nanosecond, byte_order=capture.byte_order,
        frames=capture.frames, tcp_segments=len(capture.segments), skipped=dict(capture.skipped),
        start=None if capture.first_ns is None else capture.first_ns / 1e9,
        duration=0.0 if capture.first_ns is None else ((capture.last_ns or 0) - capture.first_ns) / 1e9,
        connections=connections)


def summarize_file(path: str | Path, *, server_port: int | None = None) -> CaptureSummary:
    return summarize(Path(path).read_bytes(), server_port=server_port)


def _endpoint(text: str) -> Endpoint:
    host, _, port = str(text).rpartition(":")
    return Endpoint(host[1:-1] if host.startswith("[") else host, int(port))


def _direction_from_dict(data: dict[str, object]) -> DirectionSummary:
    values = dict(data)
    for name in ("sender", "receiver"):
        values[name] = _endpoint(str(values[name]))
    for name in ("syn", "syn_ack", "fin", "rst"):
        values[name] = FlagStat(**values[name])   # type: ignore[arg-type]
    return DirectionSummary(**values)             # type: ignore[arg-type]


def summary_from_dict(data: dict[str, object]) -> CaptureSummary:
    """The inverse of :meth:`CaptureSummary.as_dict`: a summary kept in a report, to render again."""
    values = dict(data)
    values["connections"] = [
        ConnectionSummary(index=c["index"], client=_endpoint(c["client"]), server=_endpoint(c["server"]),
                          roles_from=c["roles_from"], outcome=c["outcome"],
                          client_to_server=_direction_from_dict(c["client_to_server"]),
                          server_to_client=_direction_from_dict(c["server_to_client"]),
                          timeline=[Event(**e) for e in c["timeline"]])
        for c in data["connections"]]   # type: ignore[union-attr]
    return CaptureSummary(**values)     # type: ignore[arg-type]


@dataclass(frozen=True)
class TcpdumpStats:
    """tcpdump's closing counts. The pcap file cannot say what it missed; these can."""

    captured: int | None = None
    received: int | None = None     # "received by filter"
    dropped: int | None = None      # "dropped by kernel": the ring overflowed, evidence is missing


def tcpdump_stats(stderr: str) -> TcpdumpStats:
    """Read the counts tcpdump prints to stderr when it stops.

    Check ``dropped == 0`` before trusting a summary's "no such packet" facts:
    a burst (a few MB over loopback) can overflow the capture buffer.
    """
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].isdigit() and words[1] in ("packet", "packets"):
            if words[2] in ("captured", "received", "dropped"):   # "1 packet captured": singular too
                found[words[2]] = int(words[0])
    return TcpdumpStats(**found)
