"""What a lab server does to its clients on purpose: the failure scenarios it can act out.

One frozen value, changed at start (CLI flags) or at run time (the control
port's ``behave`` command). Connection handlers read the current value before
each message, so a change applies to connections already open::

    Behaviour(mode="abort", after=3)       # RST each connection after its 3rd message
    Behaviour(mode="close", after=0)       # FIN right after accept
    Behaviour(mode="stop_reading")         # never call recv: the clients' sends fill up and block
    Behaviour(accepting=False)             # leave new connections in the listen backlog
    Behaviour(nofile=32)                   # the process's soft RLIMIT_NOFILE: accept() meets EMFILE

``after`` counts DATA messages handled on one connection. For ``close`` and
``abort`` the connection ends *between* messages, after the ``after``-th one;
``ack_last=False`` drops that message's ECHO (it is still delivered), which is
how a client is made to resend something the server already has.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Mode = Literal["normal", "close", "abort", "stop_reading"]
MODES: tuple[str, ...] = ("normal", "close", "abort", "stop_reading")
NOFILE_MIN = 16       # below this the server cannot keep its own listeners, log and control port
NOFILE_MAX = 65536


@dataclasses.dataclass(frozen=True)
class Behaviour:
    mode: Mode = "normal"
    after: int = 0
    ack_last: bool = True
    accepting: bool = True
    nofile: int | None = None     # soft RLIMIT_NOFILE of the server process; None: as it started

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"behaviour mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError(f"behaviour 'after' must be an int >= 0 (messages per connection); got {self.after!r}")
        if self.nofile is not None and (isinstance(self.nofile, bool) or not isinstance(self.nofile, int)
                                        or not NOFILE_MIN <= self.nofile <= NOFILE_MAX):
            raise ValueError(f"behaviour 'nofile' must be null or an int from {NOFILE_MIN} to {NOFILE_MAX} "
                             f"(open files for the whole process); got {self.nofile!r}")
        for name in ("ack_last", "accepting"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"behaviour {name!r} must be true or false; got {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> "Behaviour":
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown behaviour field(s) {', '.join(unknown)}; "
                             f"accepted: {', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def ends_connection_at(self, messages: int) -> bool:
        """True when a connection that has handled ``messages`` must now be closed or aborted."""
        return self.mode in ("close", "abort") and messages >= self.after

    def pauses_reading_at(self, messages: int) -> bool:
        return self.mode == "stop_reading" and messages >= self.after

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["Behaviour", "Mode", "MODES"]
