"""One kind of test at a time: under pytest-xdist, tests of a kind run side by side, never beside another kind.

A timed test (every lab and loopback test: time bounds, round trips, stalls, a clock's steps)
must find the CPUs as it would running alone, apart from other timed tests, which mostly wait
on timers. A CPU-bound test (the unit tests, a compiler) keeps both CPUs busy, and beside it a
timed one is kept off the CPU for half a second now and then: measured, that is what turned
concurrent runs red. So the workers share one small state file, a "room": a test enters when
the room is empty or already holds its kind, and waits otherwise.

No deadlock: a test holds one place at a time, and waits, holding none, only for tests of the
other kind that are already in and wait for nothing. The suite orders the CPU-bound tests first (tests/conftest.py), so the
timed ones find the room theirs once those are done. A place held by a worker that died is
given back (its process is gone); a wait longer than ``patience`` is an error that says who held
the room.

    rooms = Rooms(path)
    with rooms.enter("timed"):
        ...                      # the test
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class RoomWaitTooLong(RuntimeError):
    """A test waited longer than its patience for the room to be free of the other kind."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        return True
    return True


class Rooms:
    """The shared room of one test session, in the JSON file ``path`` (made when first entered)."""

    def __init__(self, path: Path, *, pid: Callable[[], int] = os.getpid, alive: Callable[[int], bool] = _alive,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 poll: float = 0.05, patience: float = 1800.0) -> None:
        self.path = path
        self._pid, self._alive, self._sleep, self._clock = pid, alive, sleep, clock
        self.poll, self.patience = poll, patience
        self.kind: str | None = None    # the kind this process holds a place for, if any
        self.waited = 0.0               # seconds this process has spent waiting, in all

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, object]]:
        with open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            text = f.read()
            state = json.loads(text) if text.strip() else {"kind": None, "holders": []}
            # Places held by processes that are gone (a crashed worker) are given back.
            state["holders"] = [p for p in state["holders"] if self._alive(p)]
            if not state["holders"]:
                state["kind"] = None
            yield state
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))
            f.flush()

    def _take(self, kind: str) -> None:
        began = self._clock()
        while True:
            with self._state() as state:
                if state["kind"] in (None, kind):
                    state["kind"] = kind
                    state["holders"] = [*state["holders"], self._pid()]   # type: ignore[misc]
                    self.kind = kind
                    self.waited += self._clock() - began
                    return
                holders, other = list(state["holders"]), state["kind"]   # type: ignore[call-overload]
            if self._clock() - began > self.patience:
                raise RoomWaitTooLong(f"waited {self._clock() - began:.0f} s to run a {kind!r} test: the room "
                                      f"still holds {other!r} tests of processes {holders}")
            self._sleep(self.poll)

    def _give_back(self) -> None:
        with self._state() as state:
            holders = list(state["holders"])   # type: ignore[call-overload]
            if self._pid() in holders:
                holders.remove(self._pid())
            state["holders"] = holders
            if not holders:
                state["kind"] = None
        self.kind = None

    @contextlib.contextmanager
    def enter(self, kind: str) -> Iterator[None]:
        """Hold a place for a ``kind`` test for the duration (waiting while the other kind is in)."""
        self._take(kind)
        try:
            yield
        finally:
            self._give_back()


_current: Rooms | None = None


def install(room: Rooms | None) -> None:
    """The session's room (None: not under xdist, where every test runs alone anyway)."""
    global _current
    _current = room


def current() -> Rooms | None:
    return _current
