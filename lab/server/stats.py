"""Connection counters a lab server keeps, safe to update from many threads.

Deliveries, duplicates and checksums live in the :class:`~lab.server.log.DeliveryLog`
(they must survive a restart); this holds what is about one run of the process:
connections accepted, open and closed, and the errors seen per connection.

:class:`Rejections` keeps the last :data:`REJECTION_LOG_SIZE` connections that
ended because what they sent broke the protocol, with the bytes they began
with: the grading judge reads them (control command ``rejections``) to tell
"the code spoke the protocol wrong" from a crash of its own. A ``reset`` does
not clear them: the runner resets after a run, before the judge asks, and the
judge selects by time (``since``) anyway.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from lab.sockets.errors import LabError

ERROR_LOG_SIZE = 200
REJECTION_LOG_SIZE = 64


class ServerStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.accepted = 0
            self.active = 0
            self.closed: collections.Counter[str] = collections.Counter()
            self.errors: collections.Counter[str] = collections.Counter()
            # Bounded: a flood of dying clients must not grow the server without limit.
            self.error_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=ERROR_LOG_SIZE)

    def opened(self) -> None:
        with self._lock:
            self.accepted += 1
            self.active += 1

    def ended(self, how: str) -> None:
        with self._lock:
            self.active -= 1
            self.closed[how] += 1

    def error(self, conn_id: int | None, exc: BaseException) -> dict[str, Any]:
        if isinstance(exc, LabError):
            record: dict[str, Any] = {"conn": conn_id, **exc.as_dict()}
        else:
            record = {"conn": conn_id, "error": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, OSError) and exc.errno is not None:
                record["errno"] = exc.errno
        return self.record(record)

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Count an error already described as a record (``{"conn", "error", ...}``): how the
        forking server's parent takes in what a child reported."""
        with self._lock:
            self.errors[record["error"]] += 1
            self.error_log.append(record)
        return record

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": self.accepted,
                "active": self.active,
                "closed": dict(self.closed),
                "errors": dict(self.errors),
                "error_log": list(self.error_log),
            }


class Rejections:
    """The last :data:`REJECTION_LOG_SIZE` protocol rejections, oldest first; safe from many threads."""

    def __init__(self, size: int = REJECTION_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def add(self, record: dict[str, Any], at: float | None = None) -> dict[str, Any]:
        """Keep one rejection (see ServerConnection.rejection), stamped with ``at`` (default now, unix time)."""
        stamped = {"at": time.time() if at is None else at, **record}
        with self._lock:
            self._log.append(stamped)
        return stamped

    def since(self, t: float | None = None) -> list[dict[str, Any]]:
        """The rejections at or after unix time ``t`` (all of them when None), oldest first."""
        with self._lock:
            return [dict(r) for r in self._log if t is None or r["at"] >= t]


__all__ = ["ServerStats", "Rejections", "ERROR_LOG_SIZE", "REJECTION_LOG_SIZE"]
