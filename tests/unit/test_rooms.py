"""The room that keeps timed tests apart from CPU-bound ones under pytest-xdist (tests/support/rooms.py)."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from tests.support.rooms import Rooms, RoomWaitTooLong


def _rooms(path: Path, pid: int, **kwargs: object) -> Rooms:
    return Rooms(path, pid=lambda: pid, alive=lambda p: True, **kwargs)  # type: ignore[arg-type]


def _state(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def test_tests_of_one_kind_share_the_room(tmp_path: Path) -> None:
    path = tmp_path / "rooms.json"
    a, b = _rooms(path, 101), _rooms(path, 102)
    with a.enter("timed"), b.enter("timed"):
        assert _state(path) == {"kind": "timed", "holders": [101, 102]}
    assert _state(path) == {"kind": None, "holders": []}
    assert a.waited < 0.1 and b.waited < 0.1   # let in at once: no poll


def test_the_other_kind_waits_until_the_room_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "rooms.json"
    inside = _rooms(path, 101)
    entered = inside.enter("cpu")
    entered.__enter__()
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:            # the CPU-bound test ends while the timed one waits
            entered.__exit__(None, None, None)

    now = [0.0]

    def clock() -> float:
        now[0] += 0.05
        return now[0]

    waiting = _rooms(path, 102, sleep=sleep, clock=clock, poll=0.05)
    with waiting.enter("timed"):
        assert _state(path) == {"kind": "timed", "holders": [102]}
    assert naps == [0.05, 0.05, 0.05]
    assert waiting.waited == pytest.approx(0.2)


def test_a_place_held_by_a_dead_process_is_given_back(tmp_path: Path) -> None:
    path = tmp_path / "rooms.json"
    path.write_text(json.dumps({"kind": "cpu", "holders": [999999]}))
    alive = Rooms(path, pid=lambda: 102, alive=lambda p: p != 999999, sleep=lambda s: pytest.fail("waited"))
    with alive.enter("timed"):
        assert _state(path) == {"kind": "timed", "holders": [102]}


def test_waiting_past_patience_says_who_holds_the_room(tmp_path: Path) -> None:
    path = tmp_path / "rooms.json"
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    with _rooms(path, 101).enter("cpu"):
        waiting = _rooms(path, 102, sleep=lambda s: None, clock=clock, patience=5.0)
        with pytest.raises(RoomWaitTooLong, match=r"to run a 'timed' test: the room still holds 'cpu' tests "
                                                  r"of processes \[101\]"):
            with waiting.enter("timed"):
                pytest.fail("entered a room of the other kind")
    assert _state(path) == {"kind": None, "holders": []}


def _worker(path: str, kind: str, hold: float, log: str) -> None:
    rooms = Rooms(Path(path), poll=0.005)
    with rooms.enter(kind):
        began = time.monotonic()
        time.sleep(hold)
        ended = time.monotonic()
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps([kind, began, ended]) + "\n")


def test_real_processes_of_two_kinds_never_overlap(tmp_path: Path) -> None:
    path, log = tmp_path / "rooms.json", tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(path), kind, 0.15, str(log)))
             for kind in ("cpu", "timed", "cpu", "timed", "cpu", "timed")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=20)
        assert p.exitcode == 0
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(spans) == 6
    for kind_a, a0, a1 in spans:
        for kind_b, b0, b1 in spans:
            if kind_a != kind_b:
                assert a1 <= b0 or b1 <= a0, spans
    assert _state(path) == {"kind": None, "holders": []}
