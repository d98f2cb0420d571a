"""The events of one run, kept in order and handed to every page that listens, from the start.

A publisher (the command that runs the scenario) calls :meth:`EventHub.publish` for each event
and :meth:`EventHub.finish` once with the report; each listener iterates :meth:`EventHub.follow`,
which yields every event so far and then each new one, and ends after the finish. Items are
numbered: a page that reconnects (EventSource does so by itself, sending the last number it got)
goes on from the next one, so nothing is lost and nothing is drawn twice.
Thread-safe; every wait has a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

Kind = str            # "event" (a timeline event), "step" (narration), "end" (the report's summary)


class EventHub:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._items: list[tuple[Kind, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._finished = False
        self._next = threading.Event()
        self.clock = clock

    def publish(self, kind: Kind, data: dict[str, Any]) -> None:
        """Add one item; ``published`` (wall-clock seconds) lets the page measure its own lag."""
        with self._cond:
            if self._finished:
                raise RuntimeError("this run's events are finished")
            self._items.append((kind, {**data, "published": self.clock()}))
            self._cond.notify_all()

    def finish(self, summary: dict[str, Any]) -> None:
        with self._cond:
            if not self._finished:
                self._items.append(("end", {**summary, "published": self.clock()}))
                self._finished = True
                self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._finished

    def items(self) -> list[tuple[Kind, dict[str, Any]]]:
        with self._cond:
            return list(self._items)

    def follow(self, *, start: int = 0, poll: float = 1.0,
               stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, Kind, dict[str, Any]] | None]:
        """(index, kind, data) of every item from ``start``, then of each new one; None every ``poll``
        seconds of quiet (a keep-alive for the connection), until the finish is handed over or ``stop()``."""
        i = max(start, 0)
        while not stop():
            with self._cond:
                if i >= len(self._items) and not self._finished:
                    self._cond.wait(poll)
                batch, done = self._items[i:], self._finished
            first = i
            i += len(batch)
            if not batch:
                if done:
                    return
                yield None
            for n, (kind, data) in enumerate(batch, first):
                yield n, kind, data
            if done:
                return

    # The "next" button of a paused demo: the page presses it, the narration waits for it.
    def press_next(self) -> None:
        self._next.set()

    def wait_next(self, timeout: float) -> bool:
        """True if the page pressed "next" within ``timeout`` seconds (then it is armed again)."""
        pressed = self._next.wait(timeout)
        self._next.clear()
        return pressed
