"""Each path fault's decisions on hand-built segments, its validation, and decoding one from a request."""

from __future__ import annotations

import pytest

from lab.inlab.agent import packets as pk
from lab.inlab.agent import pathfaults as pf
from lab.inlab.agent.nfqueue import ACCEPT, Decision, QueuedPacket
from lab.inlab.agent.pathfaults import CorruptFault, DelayFault, DuplicateFault, ReorderFault, SegmentMatch

C, S = "10.213.1.2", "10.213.2.2"


def queued(payload: bytes = b"data", *, sport: int = 40000, dport: int = 7000, flags: int = pk.ACK | pk.PSH,
           packet_id: int = 1) -> QueuedPacket:
    return QueuedPacket(5, packet_id, 0x0800, 2, pk.build_tcp(C, S, sport, dport, flags=flags, payload=payload))


TO = queued()
FROM = queued(sport=7000, dport=40000)
SYN = queued(b"", flags=pk.SYN)
FIN = queued(b"", flags=pk.FIN | pk.ACK)
RST = queued(b"", flags=pk.RST)
PURE_ACK = queued(b"")
OTHER_PORT = queued(dport=7001)
UDP = QueuedPacket(5, 1, 0x0800, 2, TO.payload[:9] + b"\x11" + TO.payload[10:])


@pytest.mark.parametrize(("match", "expected"), [
    (SegmentMatch(7000), [True, False, False, False, False, False, False]),
    (SegmentMatch(7000, "from"), [False, True, False, False, False, False, False]),
    (SegmentMatch(7000, "both"), [True, True, False, False, False, False, False]),
    (SegmentMatch(7000, control=True), [True, False, True, True, True, False, False]),
    (SegmentMatch(7000, data_only=False), [True, False, False, False, False, True, False]),
])
def test_segment_match(match: SegmentMatch, expected: list[bool]) -> None:
    packets = [TO, FROM, SYN, FIN, RST, PURE_ACK, OTHER_PORT]
    assert [pf.matching_tcp(p, match) is not None for p in packets] == expected
    assert pf.matching_tcp(UDP, match) is None


def test_duplicate_every_third_data_segment_only() -> None:
    policy = DuplicateFault(SegmentMatch(7000), every=3).policy()
    decisions = [policy(p) for p in (TO, SYN, TO, PURE_ACK, TO, TO, FROM, TO, TO)]
    assert [d.copies for d in decisions] == [0, 0, 0, 0, 1, 0, 0, 0, 1]


def test_duplicate_by_probability_is_seeded() -> None:
    def picks(seed: int) -> list[int]:
        policy = DuplicateFault(SegmentMatch(7000), probability=0.5, seed=seed, copies=2).policy()
        return [policy(TO).copies for _ in range(20)]

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)
    assert set(picks(7)) == {0, 2}


def test_reorder_holds_one_and_the_next_releases_it() -> None:
    policy = ReorderFault(SegmentMatch(7000), every=2).policy()
    decisions = [policy(p) for p in (TO, TO, PURE_ACK, TO, TO, TO)]
    held = Decision(hold=True, delay=pf.MAX_HOLD_MS / 1000)
    assert decisions == [ACCEPT, held, ACCEPT, Decision(release=True), ACCEPT, held]


def test_reorder_with_a_fixed_hold() -> None:
    policy = ReorderFault(SegmentMatch(7000), hold_ms=30).policy()
    assert [policy(TO) for _ in range(2)] == [Decision(hold=True, delay=0.03)] * 2


def test_delay_with_jitter_is_seeded_and_within_bounds() -> None:
    def delays(seed: int) -> list[float]:
        policy = DelayFault(SegmentMatch(7000), delay_ms=50, jitter_ms=10, seed=seed).policy()
        return [policy(TO).delay for _ in range(50)]

    assert delays(3) == delays(3) and delays(3) != delays(4)
    assert all(0.040 <= d <= 0.060 for d in delays(3))
    assert DelayFault(SegmentMatch(7000), delay_ms=20).policy()(TO) == Decision(delay=0.02)
    assert DelayFault(SegmentMatch(7000), delay_ms=20).policy()(FROM) == ACCEPT


def test_corrupt_bad_checksum_once() -> None:
    policy = CorruptFault(SegmentMatch(7000), limit=1, offset=2, mask=0x04).policy()
    first, second = policy(TO), policy(TO)
    assert second == ACCEPT and first.payload is not None
    info = pk.parse_tcp(first.payload)
    assert info.payload(first.payload) == b"dapa"   # "t" 0x74 ^ 0x04
    assert pk.checksums_ok(first.payload) == (True, False)


def test_corrupt_recompute_every_second_and_skips_short_payloads() -> None:
    policy = CorruptFault(SegmentMatch(7000), mode="recompute", every=2, offset=3).policy()
    short = queued(b"abc")
    decisions = [policy(p) for p in (TO, short, TO, PURE_ACK, TO, TO)]
    assert [d.payload is not None for d in decisions] == [False, False, True, False, False, True]
    fixed = decisions[2].payload
    assert fixed is not None and pk.parse_tcp(fixed).payload(fixed) == b"dat`"
    assert pk.checksums_ok(fixed) == (True, True)


def test_corrupt_per_connection_limits_each_connection_apart() -> None:
    other = queued(sport=40001)
    shared = CorruptFault(SegmentMatch(7000), limit=1).policy()
    assert [shared(p).payload is not None for p in (TO, other, TO)] == [True, False, False]
    apart = CorruptFault(SegmentMatch(7000), limit=1, per_connection=True).policy()
    assert [apart(p).payload is not None for p in (TO, other, TO, other)] == [True, True, False, False]
    with pytest.raises(ValueError, match="per_connection must be true or false"):
        CorruptFault(SegmentMatch(7000), per_connection=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SegmentMatch(0), "port must be an integer 1..65535"),
    (lambda: SegmentMatch(7000, "up"), "direction must be one of to, from, both"),
    (lambda: DuplicateFault(SegmentMatch(7000)), "exactly one of every"),
    (lambda: DuplicateFault(SegmentMatch(7000), every=2, probability=0.5), "exactly one of every"),
    (lambda: DuplicateFault(SegmentMatch(7000), probability=1.5), "probability must be a number 0..1"),
    (lambda: ReorderFault(SegmentMatch(7000), every=0), "every must be an integer 1..1000000"),
    (lambda: DelayFault(SegmentMatch(7000), delay_ms=0), "needs delay_ms or jitter_ms"),
    (lambda: DelayFault(SegmentMatch(7000), delay_ms=-5), "delay_ms must be a number 0..10000"),
    (lambda: CorruptFault(SegmentMatch(7000), mode="scramble"), "mode must be one of bad-checksum, recompute"),
    (lambda: CorruptFault(SegmentMatch(7000), mask=256), "mask must be an integer 1..255"),
])
def test_bad_parameters_say_what_is_accepted(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


def test_fault_from_dict() -> None:
    assert pf.fault_from_dict({"kind": "delay", "port": 7000, "direction": "from", "delay_ms": 50,
                               "jitter_ms": 5, "seed": 2}) == DelayFault(SegmentMatch(7000, "from"), 50, 5, 2)
    assert pf.fault_from_dict({"kind": "corrupt", "port": 7000, "mode": "recompute", "limit": 1}) == CorruptFault(
        SegmentMatch(7000), mode="recompute", limit=1)


@pytest.mark.parametrize(("spec", "message"), [
    ([], "a fault is an object with a kind, not list"),
    ({"kind": "melt"}, "kind must be one of duplicate, reorder, delay, corrupt, not 'melt'"),
    ({"kind": "delay", "delay_ms": 5}, "a delay fault needs a port"),
    ({"kind": "delay", "port": 1, "delay": 5}, r"unknown field\(s\) for a delay fault: delay; accepted: port,"),
    ({"kind": "duplicate", "port": 1, "every": 1, "control": "yes"}, "control must be true or false"),
])
def test_fault_from_dict_refuses(spec, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        pf.fault_from_dict(spec)
