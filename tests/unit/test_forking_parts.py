"""The forking server's pure parts: the shared delivery log several processes follow, and the
shared behaviour page children read. (Its processes are tested in tests/loopback/test_forking.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.server.behaviour import Behaviour
from lab.server.forking import SharedBehaviour
from lab.server.log import FILENAME, DeliveryLog, SharedDeliveryLog, body_checksum, body_digest

SID = bytes(range(16))


def test_one_log_sees_what_another_appended_without_reopening(tmp_path: Path) -> None:
    parent, child = SharedDeliveryLog(tmp_path), SharedDeliveryLog(tmp_path)
    assert child.deliver(SID, 1, b"one") and child.deliver(SID, 2, b"two")
    assert parent.last_seq(SID) == 2            # read from the file, not told
    assert parent.delivered_counts([body_digest(b"one")]) == {body_digest(b"one"): 1}
    snap = parent.snapshot()
    assert (snap["delivered"], snap["checksum"]) == (2, body_checksum([b"one", b"two"]))
    # The dedup holds across them: the seq another process delivered is a duplicate here.
    assert parent.deliver(SID, 2, b"two") is False
    assert child.deliver(SID, 3, b"three") is True
    assert parent.last_seq(SID) == 3


def test_the_file_is_the_same_format_the_other_servers_reload(tmp_path: Path) -> None:
    shared = SharedDeliveryLog(tmp_path)
    shared.deliver(SID, 1, b"a")
    shared.deliver(None, 1, b"b")
    shared.close()
    plain = DeliveryLog(tmp_path)
    assert plain.snapshot()["delivered"] == 2 and plain.last_seq(SID) == 1
    plain.close()
    lines = [json.loads(line) for line in (tmp_path / FILENAME).read_text().splitlines()]
    assert [(r["session"], r["seq"], r["d"]) for r in lines] == [(SID.hex(), 1, body_digest(b"a")),
                                                                 (None, 1, body_digest(b"b"))]


def test_a_torn_tail_is_skipped_and_the_next_line_is_not_glued_to_it(tmp_path: Path) -> None:
    log = SharedDeliveryLog(tmp_path)
    log.deliver(SID, 1, b"a")
    with open(tmp_path / FILENAME, "a") as f:
        f.write('{"session": "' + SID.hex() + '", "se')     # a writer killed mid-line
    other = SharedDeliveryLog(tmp_path)
    assert other.last_seq(SID) == 1                          # the fragment is not a delivery
    assert log.deliver(SID, 2, b"b") is True
    fresh = SharedDeliveryLog(tmp_path)
    assert fresh.last_seq(SID) == 2 and fresh.snapshot()["delivered"] == 2
    assert other.last_seq(SID) == 2


def test_refusals_are_told_and_counted_elsewhere(tmp_path: Path) -> None:
    told: list[str] = []
    child, parent = SharedDeliveryLog(tmp_path), SharedDeliveryLog(tmp_path)
    child.on_refused = told.append
    child.deliver(SID, 1, b"a")
    assert child.deliver(SID, 1, b"a") is False
    assert told == [body_digest(b"a")]
    parent.count_refused(told[0])
    parent.count_refused("not a digest")                     # ignored, not a crash
    assert parent.refused_counts([told[0]]) == {told[0]: 1}
    assert parent.snapshot()["duplicates"] == 1


def test_before_read_runs_before_the_counts_are_read(tmp_path: Path) -> None:
    log = SharedDeliveryLog(tmp_path)
    calls: list[str] = []
    log.before_read = lambda: calls.append("pumped")
    log.refused_counts([])
    log.snapshot()
    assert calls == ["pumped", "pumped"]


def test_a_closed_log_refuses_deliveries(tmp_path: Path) -> None:
    log = SharedDeliveryLog(tmp_path)
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.deliver(SID, 1, b"a")


def test_the_behaviour_page_gives_back_what_was_published() -> None:
    page = SharedBehaviour(Behaviour())
    assert page.read() == Behaviour()
    page.publish(Behaviour(mode="abort", after=3, ack_last=False))
    assert page.read() == Behaviour(mode="abort", after=3, ack_last=False)
    assert page.read() is page.read()        # unchanged version: nothing parsed again
    page.publish(Behaviour(accepting=False))
    assert page.read() == Behaviour(accepting=False)
    page.close()


def test_a_half_written_page_is_not_read() -> None:
    import struct

    page = SharedBehaviour(Behaviour(mode="close"))
    assert page.read().mode == "close"
    version = struct.unpack_from("<Q", page._map, 0)[0]
    struct.pack_into("<Q", page._map, 0, version + 1)     # a writer that stopped half way (odd version)
    page._map[12:16] = b"gar!"
    assert page.read().mode == "close"                     # the last complete value, not garbage
    page.close()


def test_the_page_is_shared_with_a_forked_child() -> None:
    page = SharedBehaviour(Behaviour())
    read_end, write_end = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.read(go_r, 1)                               # wait until the parent has published
            os.write(write_end, page.read().mode.encode())
        finally:
            os._exit(0)
    page.publish(Behaviour(mode="stop_reading"))
    os.write(go_w, b"x")
    assert os.read(read_end, 100) == b"stop_reading"
    assert os.waitpid(pid, 0)[1] == 0
    for fd in (read_end, write_end, go_r, go_w):
        os.close(fd)
    page.close()
