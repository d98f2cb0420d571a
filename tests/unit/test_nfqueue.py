"""The NFQUEUE codec on bytes, and the Handler driven by a fake queue (no kernel)."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from lab.inlab.agent import netlink as nl
from lab.inlab.agent import nfqueue as nfq
from lab.inlab.agent.nfqueue import ACCEPT, DROP, Decision, Handler, QueuedPacket

from tests.unit.test_packets import DATA


def _packet_message(packet_id: int, payload: bytes, queue: int = 5, extra: bytes = b"") -> bytes:
    body = (nl.encode_nfgen(2, queue) + nl.encode_attr(1, struct.pack("!IHB", packet_id, 0x0800, 2))
            + nl.attr_be32(3, 0x11) + nl.attr_be32(5, 4) + nl.attr_be32(6, 3) + extra
            + nl.encode_attr(10, payload))
    return nl.encode_message(0x0300, 0, 0, body)


def test_config_and_verdict_payloads_byte_for_byte() -> None:
    assert nfq.encode_config_cmd(5, nfq.NFQNL_CFG_CMD_BIND) == bytes([0, 0, 0, 5, 8, 0, 1, 0, 1, 0, 0, 0])
    assert nfq.encode_config_params(5) == bytes([0, 0, 0, 5, 9, 0, 2, 0, 0, 0, 0xFF, 0xFF, 2, 0, 0, 0])
    assert nfq.encode_config_flags(5, 1, 1) == bytes([0, 0, 0, 5, 8, 0, 4, 0, 0, 0, 0, 1, 8, 0, 5, 0, 0, 0, 0, 1])
    assert nfq.encode_verdict(5, 0x01020304, nfq.NF_ACCEPT) == bytes(
        [0, 0, 0, 5, 12, 0, 2, 0, 0, 0, 0, 1, 1, 2, 3, 4])
    assert nfq.encode_verdict(5, 7, nfq.NF_DROP, b"abc") == bytes(
        [0, 0, 0, 5, 12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 0, 10, 0]) + b"abc\0"


def test_decode_a_packet_message_whole() -> None:
    (msg,) = nl.decode_messages(_packet_message(42, DATA))
    assert nfq.decode_packet(msg) == QueuedPacket(queue=5, packet_id=42, hw_protocol=0x0800, hook=2, payload=DATA,
                                                  mark=0x11, indev=4, outdev=3, cap_len=None)


def test_decode_keeps_cap_len_and_ignores_unknown_attributes() -> None:
    extra = nl.attr_be32(13, 1500) + nl.encode_attr(30, b"zz")
    (msg,) = nl.decode_messages(_packet_message(1, DATA[:40], extra=extra))
    assert nfq.decode_packet(msg).cap_len == 1500 and nfq.decode_packet(msg).payload == DATA[:40]


def test_two_packets_in_one_buffer_and_a_truncated_third() -> None:
    data = _packet_message(1, b"a") + _packet_message(2, b"bb")
    assert [nfq.decode_packet(m).packet_id for m in nl.decode_messages(data)] == [1, 2]
    with pytest.raises(nl.NetlinkDecodeError):
        nl.decode_messages(data + _packet_message(3, b"c")[:-5])


def test_decode_packet_refuses_other_messages_and_missing_header() -> None:
    with pytest.raises(ValueError, match="is not an NFQUEUE packet"):
        nfq.decode_packet(nl.Message(0x0302, 0, 0, 0, nl.encode_nfgen(0, 5)))
    with pytest.raises(ValueError, match="without a 7-byte NFQA_PACKET_HDR"):
        nfq.decode_packet(nl.Message(0x0300, 0, 0, 0, nl.encode_nfgen(2, 5) + nl.encode_attr(10, b"x")))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="queue number 70000 must be an integer 0..65535"):
        nfq.encode_config_cmd(70000, 1)
    with pytest.raises(ValueError, match="verdict 3 must be NF_DROP"):
        nfq.encode_verdict(1, 1, 3)
    with pytest.raises(ValueError, match="a held packet needs a delay"):
        Decision(hold=True)
    with pytest.raises(ValueError, match="delay -1 must be 0..60"):
        Decision(delay=-1)


# --------------------------------------------------------------------------- the handler on a fake queue

class FakeQueue:
    """Hands out scripted packets and records verdicts with the time they were given."""

    def __init__(self) -> None:
        self.incoming: list[QueuedPacket] = []
        self.verdicts: list[tuple[int, int, bytes | None]] = []
        self.lock = threading.Lock()
        self.verdict_errors = 0
        self.overruns = 0
        self.closed = False

    def feed(self, *ids: int) -> None:
        with self.lock:
            self.incoming.extend(QueuedPacket(5, i, 0x0800, 2, DATA) for i in ids)

    def receive(self, timeout: float) -> list[QueuedPacket]:
        with self.lock:
            out, self.incoming = self.incoming, []
        if not out:
            time.sleep(timeout)
        return out

    def verdict(self, packet_id: int, verdict: int, payload: bytes | None = None) -> None:
        self.verdicts.append((packet_id, verdict, payload))

    def close(self) -> None:
        self.closed = True


class FakeInjector:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, packet: bytes) -> None:
        self.sent.append(packet)


def wait_for(predicate, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_handler_accepts_drops_corrupts_and_duplicates_and_counts_each() -> None:
    plan = {1: ACCEPT, 2: DROP, 3: Decision(payload=b"new"), 4: Decision(copies=2)}
    queue, injector = FakeQueue(), FakeInjector()
    handler = Handler(queue, lambda p: plan[p.packet_id], injector=injector).start()  # type: ignore[arg-type]
    queue.feed(1, 2, 3, 4)
    wait_for(lambda: len(queue.verdicts) == 4)
    counts = handler.stop()
    assert queue.verdicts == [(1, 1, None), (2, 0, None), (3, 1, b"new"), (4, 1, None)]
    assert injector.sent == [DATA, DATA]
    assert {k: counts[k] for k in ("seen", "accepted", "dropped", "corrupted", "duplicated", "bytes")} == {
        "seen": 4, "accepted": 3, "dropped": 1, "corrupted": 1, "duplicated": 2, "bytes": 4 * len(DATA)}
    assert not queue.closed   # not owned


def test_delayed_verdicts_come_out_in_due_order_and_count_as_reordered_when_overtaken() -> None:
    delays = {1: 0.15, 2: 0.05, 3: 0.0}
    queue = FakeQueue()
    handler = Handler(queue, lambda p: Decision(delay=delays[p.packet_id])).start()  # type: ignore[arg-type]
    started = time.monotonic()
    queue.feed(1, 2, 3)
    wait_for(lambda: len(queue.verdicts) == 3)
    elapsed = time.monotonic() - started
    counts = handler.stop()
    assert [v[0] for v in queue.verdicts] == [3, 2, 1]
    assert 0.15 <= elapsed < 0.5
    # 1 and 2 were both overtaken (3 went first); none was merely delayed
    assert (counts["reordered"], counts["delayed"], counts["accepted"]) == (2, 0, 3)


def test_a_delay_nobody_overtakes_counts_as_delayed() -> None:
    queue = FakeQueue()
    handler = Handler(queue, lambda p: Decision(delay=0.03)).start()  # type: ignore[arg-type]
    queue.feed(1)
    wait_for(lambda: len(queue.verdicts) == 1)
    queue.feed(2)
    wait_for(lambda: len(queue.verdicts) == 2)
    counts = handler.stop()
    assert (counts["delayed"], counts["reordered"]) == (2, 0)


def test_a_release_gives_the_held_packet_right_after_the_releasing_one() -> None:
    plan = {1: Decision(hold=True, delay=5.0), 2: Decision(release=True)}
    queue = FakeQueue()
    handler = Handler(queue, lambda p: plan[p.packet_id]).start()  # type: ignore[arg-type]
    queue.feed(1)
    time.sleep(0.05)
    assert queue.verdicts == []
    queue.feed(2)
    wait_for(lambda: len(queue.verdicts) == 2)
    counts = handler.stop()
    assert [v[0] for v in queue.verdicts] == [2, 1]
    assert (counts["reordered"], counts["pending"]) == (1, 0)


def test_stop_is_prompt_and_gives_every_pending_verdict() -> None:
    queue = FakeQueue()
    handler = Handler(queue, lambda p: Decision(delay=30.0), owns=True).start()  # type: ignore[arg-type]
    queue.feed(1, 2)
    wait_for(lambda: handler.counters()["pending"] == 2)
    started = time.monotonic()
    counts = handler.stop()
    assert time.monotonic() - started < 0.2
    assert sorted(v[0] for v in queue.verdicts) == [1, 2]
    assert (counts["pending"], counts["delayed"]) == (0, 2)
    assert queue.closed


def test_a_policy_that_raises_accepts_the_packet_and_is_counted() -> None:
    def broken(_p: QueuedPacket) -> Decision:
        raise KeyError("boom")

    queue = FakeQueue()
    handler = Handler(queue, broken).start()  # type: ignore[arg-type]
    queue.feed(9)
    wait_for(lambda: len(queue.verdicts) == 1)
    counts = handler.stop()
    assert queue.verdicts == [(9, 1, None)]
    assert counts["policy_errors"] == 1 and isinstance(handler.last_error, KeyError)


def test_a_queue_failure_ends_the_thread_and_stop_reraises_it() -> None:
    class Broken(FakeQueue):
        def receive(self, timeout: float) -> list[QueuedPacket]:
            raise nl.os_error(9, "receiving from netlink")

    handler = Handler(Broken(), nfq.accept_all).start()  # type: ignore[arg-type]
    wait_for(lambda: not handler.running)
    with pytest.raises(OSError, match="receiving from netlink"):
        handler.stop()


def test_handler_refuses_a_slow_poll() -> None:
    with pytest.raises(ValueError, match="poll 1 must be over 0 and at most 0.2"):
        Handler(FakeQueue(), nfq.accept_all, poll=1)  # type: ignore[arg-type]
