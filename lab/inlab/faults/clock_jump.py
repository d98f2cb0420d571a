# The client's wall clock jumps: time.time() in the client's affected processes moves by
# offset_s seconds at once (forward, or back when negative); time.monotonic() does not move and
# nothing on the wire changes. Containers cannot set the clock (CAP_SYS_TIME would set the
# host's, for everyone), and a time namespace offsets only CLOCK_MONOTONIC and CLOCK_BOOTTIME,
# never CLOCK_REALTIME. So the jump is libfaketime's (Debian's libfaketime, in the app image),
# preloaded into the processes the scenario starts (lab.inlab.clockchild): they read their
# wall-clock offset from a file on every call (FAKETIME_NO_CACHE), and the fault writes the
# file. FAKETIME_DONT_FAKE_MONOTONIC leaves their monotonic clock the kernel's. clear() writes
# "+0" back. The runner's own clock is never faked.
from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, param, register

CLOCK_FILE = Path("/tmp/lab-faketime")


def preload() -> str | None:
    """Where libfaketime is in this image (its directory holds the machine's triplet), or None."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def child_env(path: Path = CLOCK_FILE) -> dict[str, str]:
    """The environment of a process whose wall clock follows ``path`` and whose monotonic clock is real."""
    lib = preload()
    if lib is None:
        raise FileNotFoundError("libfaketime is not installed in this image (images/app/Dockerfile installs it)")
    env = dict(os.environ)
    env.update({"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(path), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"})
    env.pop("FAKETIME", None)
    return env


class WallClock:
    """The file the faked processes read their offset from (the one thing the fault changes)."""

    def __init__(self, path: Path = CLOCK_FILE) -> None:
        self.path = path

    def jump(self, offset_s: int) -> None:
        # One small write, then a rename: a reader never sees half a line.
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.write_text(f"{offset_s:+d}\n")
        os.replace(tmp, self.path)

    def reset(self) -> None:
        self.jump(0)


@dataclasses.dataclass(frozen=True)
class ClockJumpParams:
    offset_s: int = param(3600, ge=-86400, le=86400)   # seconds; negative jumps back


@register
class ClockJump(Fault):
    name = "clock-jump"
    params: ClockJumpParams

    def __init__(self, ctx: FaultContext, params: ClockJumpParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        self.ctx.wall_clock.jump(self.params.offset_s)
        self.active = True

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.wall_clock.reset()
