"""Per-phase deadlines for one connection, as one frozen value.

A single "timeout" cannot describe a conversation: connecting, waiting for a
reply, pushing bytes into a full send buffer and sitting idle between messages
fail for different reasons and deserve different bounds. ``Timeouts`` names
each one; ``None`` means "wait forever" and is allowed only where the caller
says so explicitly::

    t = Timeouts(connect=3.0, read=5.0, write=2.0, idle=30.0)
    t.replace(read=0.2)           # a copy with one phase changed

Bad values raise ValueError naming the field, the value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math

PHASES = ("connect", "read", "write", "idle")


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of a connection's life.

    connect: from ``connect()`` to an established connection.
    read:    from asking for a reply (or the rest of a started frame) to its arrival.
    write:   for one send to make progress; a peer that stops reading trips it.
    idle:    silence allowed between messages before the peer is declared dead
             (heartbeats, if enabled, keep a healthy but quiet peer from tripping it).
    """

    connect: float | None = 3.0
    read: float | None = 5.0
    # Below the robust connection's TCP_USER_TIMEOUT (3 s): Linux applies the user timeout to
    # zero-window probing too, so a longer write deadline would let the kernel report a peer
    # that merely stopped reading as ETIMEDOUT before SendStalled could say what happened.
    write: float | None = 2.0
    idle: float | None = 30.0

    def __post_init__(self) -> None:
        for name in PHASES:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"timeout {name!r} must be a number of seconds > 0 or None; "
                                 f"got {value!r} ({type(value).__name__})")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"timeout {name!r} must be a finite number of seconds > 0 or None; got {value!r}")
            object.__setattr__(self, name, float(value))

    def replace(self, **changes: float | None) -> "Timeouts":
        """A copy with the named phases changed; unknown names are an error."""
        unknown = sorted(set(changes) - set(PHASES))
        if unknown:
            raise ValueError(f"unknown timeout phase(s) {', '.join(unknown)}; accepted: {', '.join(PHASES)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in PHASES}


__all__ = ["Timeouts", "PHASES"]
