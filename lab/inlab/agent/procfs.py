"""What the fault agent reads from ``/proc``: the lab's processes, and the kernel's TCP counters.

:func:`lab_processes` finds the lab's servers and their supervisor (by the
module their ``python -m`` runs) so the agent can signal and wait on them;
:func:`parse_snmp` reads ``/proc/net/snmp`` and ``/proc/net/netstat``. The
root is a parameter, so unit tests hand in a fake tree.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    argv: tuple[str, ...] = ()
    started: float | None = None    # wall-clock seconds (time.time()) when the process started, if known
    cpu_s: float | None = None      # user + system CPU seconds so far (/proc/PID/stat utime + stime)
    nofile: int | None = None       # its soft RLIMIT_NOFILE (/proc/PID/limits "Max open files"), if read

    @property
    def module(self) -> str | None:
        """The module a ``python -m MODULE`` process runs, if that is what it is."""
        if "-m" in self.argv:
            i = self.argv.index("-m")
            return self.argv[i + 1] if i + 1 < len(self.argv) else None
        return None

    @property
    def role(self) -> str | None:
        module = self.module
        if module == "lab.server.supervisor" and self.pid == 1:
            return "supervisor"
        if module == "lab.server":
            return _impl(self.argv)
        return None

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state, "role": self.role, "cmdline": " ".join(self.argv),
                "started": self.started, "cpu_s": self.cpu_s, "nofile": self.nofile}


def _impl(argv: Sequence[str]) -> str:
    for i, token in enumerate(argv):
        if token.startswith("--impl="):
            return token.split("=", 1)[1]
        if token == "--impl" and i + 1 < len(argv):
            return argv[i + 1]
    return "threaded"  # lab.server's own default


def _boot_clock(proc_root: Path) -> tuple[float, float] | None:
    """(seconds since boot, wall-clock seconds), read together: turns a process's start tick into a time."""
    try:
        since_boot = float((proc_root / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return since_boot, time.time()


def _started(stat_fields: Sequence[str], clock: tuple[float, float] | None) -> float | None:
    # Field 22 of /proc/PID/stat (the 20th after the command name) is the start time in clock
    # ticks since boot: a restart is dated by the kernel, not by whoever noticed it later.
    if clock is None or len(stat_fields) < 20 or not stat_fields[19].isdigit():
        return None
    since_boot, wall = clock
    return round(wall - (since_boot - int(stat_fields[19]) / _CLOCK_TICKS), 3)


def _cpu_seconds(stat_fields: Sequence[str]) -> float | None:
    # Fields 14 and 15 of /proc/PID/stat (the 12th and 13th after the command name): utime and
    # stime in clock ticks, the CPU the process has used since it started, all its threads summed.
    if len(stat_fields) < 13 or not (stat_fields[11].isdigit() and stat_fields[12].isdigit()):
        return None
    return round((int(stat_fields[11]) + int(stat_fields[12])) / _CLOCK_TICKS, 3)


def soft_nofile(limits_text: str) -> int | None:
    """The soft "Max open files" of a /proc/PID/limits text (None: unlimited or not found)."""
    for line in limits_text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


def read_processes(proc_root: Path, *, with_cmdline: bool = True) -> list[ProcInfo]:
    """Every process visible in ``proc_root``; ones that vanish while being read are skipped."""
    found = []
    clock = _boot_clock(proc_root)
    try:
        entries = list(proc_root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv: tuple[str, ...] = ()
            if with_cmdline:
                raw = (entry / "cmdline").read_bytes()
                argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        except OSError:
            continue
        # The command name in parentheses may itself hold spaces or ')': split after the last ')'.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 2:
            continue
        found.append(ProcInfo(int(entry.name), int(rest[1]), rest[0], argv, _started(rest, clock), _cpu_seconds(rest)))
    return sorted(found, key=lambda p: p.pid)


def lab_processes(proc_root: Path) -> list[ProcInfo]:
    found = []
    for p in read_processes(proc_root):
        if p.module not in ("lab.server", "lab.server.supervisor"):
            continue
        try:   # world-readable: the kernel's word on the limit, whatever the process claims
            p = dataclasses.replace(p, nofile=soft_nofile((proc_root / str(p.pid) / "limits").read_text()))
        except OSError:
            pass
        found.append(p)
    return found


# Counters: /proc/net -----------------------------------------------------------------------------

def parse_snmp(text: str, prefix: str) -> dict[str, int]:
    """The ``prefix:`` header/value line pair of /proc/net/snmp or /proc/net/netstat."""
    lines = [line.split() for line in text.splitlines() if line.startswith(prefix + ":")]
    stats: dict[str, int] = {}
    for names, values in zip(lines[0::2], lines[1::2]):
        for name, value in zip(names[1:], values[1:]):
            stats[name] = int(value)
    return stats
