"""Packet-level faults on a forwarding hop: duplicate, reorder, delay with jitter, corrupt a payload byte.

Each fault is a frozen dataclass of typed, validated parameters; :meth:`policy` makes a fresh
stateful callable for :class:`~lab.inlab.agent.nfqueue.Handler` (its counters and seeded RNG
start over each time). They share one module because they share everything but a few lines:
the :class:`SegmentMatch` that picks the segments a fault may touch, the parse of the queued
packet, and :func:`fault_from_dict`, which decodes a request (JSON) into one of them once.

What a fault touches: TCP over IPv4 whose port matches (``direction="to"``: the destination port,
towards the port's owner; ``"from"``: the source port; ``"both"``), and by default only segments
that carry data. SYN, FIN and RST segments without data are never touched unless
``control=True``; pure ACKs only with ``data_only=False``. Anything else (not IPv4/TCP, another
port) is accepted at once, untouched.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from lab.inlab.agent.nfqueue import ACCEPT, Decision, QueuedPacket
from lab.inlab.agent.packets import PacketError, TcpPacket, corrupt_payload, parse_tcp

DIRECTIONS = ("to", "from", "both")
MAX_HOLD_MS = 200.0   # a held segment waits no longer for the next one (the last segment of a burst)


def _int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer {low}..{high}, not {value!r}")
    return value


def _number(name: str, value: object, low: float, high: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a number {low:g}..{high:g}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class SegmentMatch:
    """Which segments a fault may touch (see the module docstring)."""

    port: int
    direction: str = "to"
    control: bool = False
    data_only: bool = True

    def __post_init__(self) -> None:
        _int("port", self.port, 1, 65535)
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}")

    def matches(self, tcp: TcpPacket) -> bool:
        if self.direction == "to" and tcp.dst_port != self.port:
            return False
        if self.direction == "from" and tcp.src_port != self.port:
            return False
        if self.direction == "both" and self.port not in (tcp.src_port, tcp.dst_port):
            return False
        if tcp.is_control:
            return self.control
        return tcp.payload_length > 0 or not self.data_only


def matching_tcp(packet: QueuedPacket, match: SegmentMatch) -> TcpPacket | None:
    """The parsed segment if ``match`` selects it, else None (also for anything that is not IPv4/TCP)."""
    try:
        tcp = parse_tcp(packet.payload)
    except PacketError:
        return None
    return tcp if match.matches(tcp) else None


class _Picker:
    """Every Nth selected segment, or each with probability p from a seeded RNG (exactly one of them)."""

    def __init__(self, every: int, probability: float, seed: int) -> None:
        self.every, self.probability = every, probability
        self.rng = random.Random(seed)
        self.count = 0

    def pick(self) -> bool:
        self.count += 1
        if self.every:
            return self.count % self.every == 0
        return self.rng.random() < self.probability


def _check_every_or_probability(every: int, probability: float) -> None:
    _int("every", every, 0, 1_000_000)
    _number("probability", probability, 0.0, 1.0)
    if (every == 0) == (probability == 0.0):
        raise ValueError(f"give exactly one of every (N >= 1: every Nth segment) and probability (0 < p <= 1); "
                         f"got every={every!r}, probability={probability!r}")


# --------------------------------------------------------------------------- duplicate

@dataclass(frozen=True)
class DuplicateFault:
    """Duplicate: the chosen data segment is accepted and ``copies`` exact copies of it are injected
    right after (raw socket, IP_HDRINCL), so the receiver gets the same seq range twice: it answers
    the copy with an immediate (D)SACK ACK and its ``TcpExt.DelayedACKLost`` grows by one each."""

    kind: ClassVar[str] = "duplicate"
    match: SegmentMatch
    every: int = 0
    probability: float = 0.0
    seed: int = 0
    copies: int = 1

    def __post_init__(self) -> None:
        _check_every_or_probability(self.every, self.probability)
        _int("copies", self.copies, 1, 10)

    def policy(self) -> _DuplicatePolicy:
        return _DuplicatePolicy(self)


class _DuplicatePolicy:
    def __init__(self, fault: DuplicateFault) -> None:
        self.fault = fault
        self.picker = _Picker(fault.every, fault.probability, fault.seed)

    def __call__(self, packet: QueuedPacket) -> Decision:
        if matching_tcp(packet, self.fault.match) is None or not self.picker.pick():
            return ACCEPT
        return Decision(copies=self.fault.copies)


# --------------------------------------------------------------------------- reorder

@dataclass(frozen=True)
class ReorderFault:
    """Reorder: every ``every``-th data segment is held back. With ``hold_ms`` None it is released
    right after the next selected segment (which overtakes it: the receiver sees a gap, queues the
    later segment out of order and sends a duplicate ACK with SACK), or after ``max_hold_ms`` if no
    segment follows; with ``hold_ms`` set it is released after that long, whatever passes it."""

    kind: ClassVar[str] = "reorder"
    match: SegmentMatch
    every: int = 1
    hold_ms: float | None = None
    max_hold_ms: float = MAX_HOLD_MS

    def __post_init__(self) -> None:
        _int("every", self.every, 1, 1_000_000)
        if self.hold_ms is not None:
            _number("hold_ms", self.hold_ms, 0.1, 10_000)
        _number("max_hold_ms", self.max_hold_ms, 1, 10_000)

    def policy(self) -> _ReorderPolicy:
        return _ReorderPolicy(self)


class _ReorderPolicy:
    def __init__(self, fault: ReorderFault) -> None:
        self.fault = fault
        self.count = 0
        self.holding = False

    def __call__(self, packet: QueuedPacket) -> Decision:
        if matching_tcp(packet, self.fault.match) is None:
            return ACCEPT
        if self.fault.hold_ms is not None:
            self.count += 1
            if self.count % self.fault.every:
                return ACCEPT
            return Decision(hold=True, delay=self.fault.hold_ms / 1000)
        if self.holding:
            self.holding = False   # this one goes first, then the held one
            return Decision(release=True)
        self.count += 1
        if self.count % self.fault.every:
            return ACCEPT
        self.holding = True
        return Decision(hold=True, delay=self.fault.max_hold_ms / 1000)


# --------------------------------------------------------------------------- delay

@dataclass(frozen=True)
class DelayFault:
    """Delay with jitter: each selected segment's verdict waits ``delay_ms`` ± ``jitter_ms`` (uniform,
    from an RNG seeded with ``seed``, never below 0). Jitter larger than the gap between segments
    reorders them, as netem's does."""

    kind: ClassVar[str] = "delay"
    match: SegmentMatch
    delay_ms: float
    jitter_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _number("delay_ms", self.delay_ms, 0, 10_000)
        _number("jitter_ms", self.jitter_ms, 0, 10_000)
        if self.delay_ms == 0 and self.jitter_ms == 0:
            raise ValueError("a delay needs delay_ms or jitter_ms above 0")

    def policy(self) -> _DelayPolicy:
        return _DelayPolicy(self)


class _DelayPolicy:
    def __init__(self, fault: DelayFault) -> None:
        self.fault = fault
        self.rng = random.Random(fault.seed)

    def __call__(self, packet: QueuedPacket) -> Decision:
        if matching_tcp(packet, self.fault.match) is None:
            return ACCEPT
        jitter = self.rng.uniform(-self.fault.jitter_ms, self.fault.jitter_ms) if self.fault.jitter_ms else 0.0
        delay = max(0.0, self.fault.delay_ms + jitter) / 1000
        return Decision(delay=delay) if delay > 0 else ACCEPT


# --------------------------------------------------------------------------- corrupt

CORRUPT_MODES = ("bad-checksum", "recompute")


@dataclass(frozen=True)
class CorruptFault:
    """Corrupt one payload byte (``offset``, XOR ``mask``) of every ``every``-th data segment, at most
    ``limit`` times. ``mode="bad-checksum"`` leaves the TCP checksum as it was: the receiver's TCP
    drops the segment (``Tcp.InCsumErrors`` + 1) and the sender's retransmission arrives intact.
    ``mode="recompute"`` fixes the checksum, as a broken middlebox would: the application reads the
    flipped byte. Segments with ``offset`` or fewer payload bytes are left alone."""

    kind: ClassVar[str] = "corrupt"
    match: SegmentMatch
    mode: str = "bad-checksum"
    every: int = 1
    limit: int | None = None
    offset: int = 0
    mask: int = 0x01
    per_connection: bool = False    # ``every`` and ``limit`` count each connection's segments apart

    def __post_init__(self) -> None:
        if not isinstance(self.per_connection, bool):
            raise ValueError(f"per_connection must be true or false, not {self.per_connection!r}")
        if self.mode not in CORRUPT_MODES:
            raise ValueError(f"mode must be one of {', '.join(CORRUPT_MODES)}, not {self.mode!r}")
        _int("every", self.every, 1, 1_000_000)
        if self.limit is not None:
            _int("limit", self.limit, 1, 1_000_000_000)
        _int("offset", self.offset, 0, 65535)
        _int("mask", self.mask, 1, 255)

    def policy(self) -> _CorruptPolicy:
        return _CorruptPolicy(self)


class _CorruptPolicy:
    def __init__(self, fault: CorruptFault) -> None:
        self.fault = fault
        self.count: dict[object, int] = {}
        self.done: dict[object, int] = {}

    def __call__(self, packet: QueuedPacket) -> Decision:
        tcp = matching_tcp(packet, self.fault.match)
        if tcp is None or tcp.payload_length <= self.fault.offset:
            return ACCEPT
        # One count for all, or one per connection (both directions of a 4-tuple share it).
        flow: object = (frozenset({(tcp.src, tcp.src_port), (tcp.dst, tcp.dst_port)})
                        if self.fault.per_connection else None)
        if self.fault.limit is not None and self.done.get(flow, 0) >= self.fault.limit:
            return ACCEPT
        self.count[flow] = self.count.get(flow, 0) + 1
        if self.count[flow] % self.fault.every:
            return ACCEPT
        self.done[flow] = self.done.get(flow, 0) + 1
        return Decision(payload=corrupt_payload(packet.payload, self.fault.offset, self.fault.mask,
                                                fix_checksum=self.fault.mode == "recompute"))


# --------------------------------------------------------------------------- decoding a request

Fault = DuplicateFault | ReorderFault | DelayFault | CorruptFault
FAULTS: dict[str, type[Fault]] = {cls.kind: cls for cls in (DuplicateFault, ReorderFault, DelayFault, CorruptFault)}
MATCH_KEYS = tuple(f.name for f in fields(SegmentMatch))


def fault_from_dict(spec: Mapping[str, Any]) -> Fault:
    """One fault from a request's fields, e.g. ``{"kind": "delay", "port": 7000, "direction": "to",
    "delay_ms": 50, "jitter_ms": 10, "seed": 1}``. Raises ValueError naming what is wrong."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a fault is an object with a kind, not {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in FAULTS:
        raise ValueError(f"kind must be one of {', '.join(FAULTS)}, not {kind!r}")
    cls = FAULTS[kind]
    own = tuple(f.name for f in fields(cls) if f.name != "match")
    unknown = sorted(set(spec) - {"kind", *MATCH_KEYS, *own})
    if unknown:
        raise ValueError(f"unknown field(s) for a {kind} fault: {', '.join(unknown)}; accepted: "
                         f"{', '.join((*MATCH_KEYS, *own))}")
    if "port" not in spec:
        raise ValueError(f"a {kind} fault needs a port (and optionally direction, control, data_only)")
    for flag in ("control", "data_only"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise ValueError(f"{flag} must be true or false, not {spec[flag]!r}")
    match = SegmentMatch(**{k: spec[k] for k in MATCH_KEYS if k in spec})
    return cls(match=match, **{k: spec[k] for k in own if k in spec})
