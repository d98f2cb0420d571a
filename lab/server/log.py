"""The delivery log: which (session, seq) pairs a server has delivered, kept on disk.

Exactly-once across a server restart needs two things: a duplicate must be
recognised even if the process that delivered the original has died, and a
message must never be acknowledged before it is recorded. This module owns the
first; the protocol core owns the second by calling :meth:`DeliveryLog.deliver`
(which appends and flushes) before it queues the ECHO::

    log = DeliveryLog(state_dir)          # reloads state_dir/deliveries.jsonl, if any
    if log.deliver(session_id, seq, body):
        ...                               # new: recorded
    else:
        ...                               # duplicate: seq <= last delivered for that session

One JSON line per delivery: ``{"session": hex|null, "seq": n, "len": n, "crc": n}``.
``session`` is null for anonymous connections (no HELLO), which get no dedup.
A torn last line (the process died mid-write) is ignored on reload: its ECHO
was never sent, so the client still holds that message and will resend it.

Checksums are the sum of ``zlib.crc32(body)`` modulo 2**32: order-independent,
so a test with many concurrent clients can predict the total.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import zlib
from pathlib import Path
from typing import IO

FILENAME = "deliveries.jsonl"
ANONYMOUS = "anonymous"
_MOD = 2**32


def body_checksum(bodies: "list[bytes] | tuple[bytes, ...]") -> int:
    """The checksum a server reports after delivering exactly these bodies once."""
    return sum(zlib.crc32(b) for b in bodies) % _MOD


@dataclasses.dataclass
class SessionTotals:
    count: int = 0
    last_seq: int = 0
    checksum: int = 0

    def add(self, seq: int, crc: int) -> None:
        self.count += 1
        self.last_seq = max(self.last_seq, seq)
        self.checksum = (self.checksum + crc) % _MOD


class DeliveryLog:
    """Thread-safe record of deliveries; persistent when given a state dir."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionTotals] = {}
        self.delivered = 0
        self.duplicates = 0
        self.checksum = 0
        self.path: Path | None = None
        self._file: IO[str] | None = None
        if state_dir is not None:
            self.path = Path(state_dir) / FILENAME
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._reload(self.path)
            self._file = open(self.path, "a", encoding="ascii")

    def _reload(self, path: Path) -> None:
        if not path.exists():
            return
        with open(path, encoding="ascii") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    key = rec["session"] or ANONYMOUS
                    seq, crc = int(rec["seq"]), int(rec["crc"])
                except (ValueError, KeyError, TypeError):
                    continue  # torn tail of a crashed write: never acknowledged
                self._count(key, seq, crc)

    def _count(self, key: str, seq: int, crc: int) -> None:
        self._sessions.setdefault(key, SessionTotals()).add(seq, crc)
        self.delivered += 1
        self.checksum = (self.checksum + crc) % _MOD

    def last_seq(self, session: bytes | None) -> int:
        """Highest seq delivered for this session; 0 for a new or anonymous one."""
        if session is None:
            return 0
        with self._lock:
            totals = self._sessions.get(session.hex())
            return totals.last_seq if totals else 0

    def deliver(self, session: bytes | None, seq: int, body: bytes) -> bool:
        """Record a delivery and return True, or return False for a duplicate.

        The record is on disk (written and flushed) when this returns True.
        """
        crc = zlib.crc32(body)
        with self._lock:
            key = session.hex() if session is not None else ANONYMOUS
            totals = self._sessions.get(key)
            if session is not None and totals is not None and seq <= totals.last_seq:
                self.duplicates += 1
                return False
            if self._file is not None:
                rec = {"session": key if session is not None else None, "seq": seq, "len": len(body), "crc": crc}
                self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
                self._file.flush()
            self._count(key, seq, crc)
            return True

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "delivered": self.delivered,
                "duplicates": self.duplicates,
                "checksum": self.checksum,
                "sessions": {k: dataclasses.asdict(v) for k, v in self._sessions.items()},
            }

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


__all__ = ["DeliveryLog", "SessionTotals", "body_checksum", "FILENAME", "ANONYMOUS"]
