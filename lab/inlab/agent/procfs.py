"""What the fault agent reads from ``/proc``: the lab's processes, and the kernel's TCP counters.

:func:`lab_processes` finds the lab's servers and their supervisor (by the
module their ``python -m`` runs) so the agent can signal and wait on them;
:func:`parse_snmp` reads ``/proc/net/snmp`` and ``/proc/net/netstat``. The
root is a parameter, so unit tests hand in a fake tree.

A forked child of a lab server has its parent's command line; it is told apart by its
name (the forking server's children write :data:`CHILD_COMM` into ``/proc/self/comm``) or by
its parent (a ``lab.server`` process whose parent is a ``lab.server`` process): it gets the
role ``IMPL-child`` (``forking-child``), so that "the forking server" is its listener and never
one of the children, not even an orphan whose listener was killed (its parent is then PID 1). With ``sockets=True`` each process also lists its TCP
sockets, read by the kernel's own account: the ``socket:[inode]`` links in ``/proc/PID/fd``
matched to the inodes of ``/proc/net/tcp`` (for the server's uid, reading another user's
``fd`` directory takes CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; see compose.yaml).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.inlab import tcptable

CHILD_COMM = "lab-child"
"""What a lab server's forked child calls itself (lab.server.forking writes it to /proc/self/comm)."""
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
    child_of: int | None = None     # a lab server's forked child: its parent's pid
    comm: str = ""                  # the kernel's name for it (/proc/PID/comm, in stat's parentheses)
    sockets: tuple[dict[str, Any], ...] | None = None   # its TCP sockets, when asked for (None: not read)

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
            return _impl(self.argv) + ("-child" if self.child_of is not None else "")
        return None

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")

    def describe(self) -> dict[str, Any]:
        described = {"pid": self.pid, "state": self.state, "role": self.role, "cmdline": " ".join(self.argv),
                     "started": self.started, "ppid": self.ppid, "cpu_s": self.cpu_s, "nofile": self.nofile}
        if self.sockets is not None:
            described["sockets"] = list(self.sockets)
        return described


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
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        found.append(ProcInfo(int(entry.name), int(rest[1]), rest[0], argv, _started(rest, clock), _cpu_seconds(rest),
                              comm=comm))
    return sorted(found, key=lambda p: p.pid)


def lab_processes(proc_root: Path, *, sockets: bool = False) -> list[ProcInfo]:
    found = []
    for p in read_processes(proc_root):
        if p.module not in ("lab.server", "lab.server.supervisor"):
            continue
        try:   # world-readable: the kernel's word on the limit, whatever the process claims
            p = dataclasses.replace(p, nofile=soft_nofile((proc_root / str(p.pid) / "limits").read_text()))
        except OSError:
            pass
        found.append(p)
    servers = {p.pid for p in found if p.module == "lab.server"}
    found = [dataclasses.replace(p, child_of=p.ppid)
             if p.module == "lab.server" and (p.ppid in servers or p.comm == CHILD_COMM) else p for p in found]
    if sockets:
        table = {row.inode: row for row in tcptable.read(proc_root / "net" / "tcp") if row.inode}
        found = [dataclasses.replace(p, sockets=tuple(process_sockets(proc_root, p.pid, table))) for p in found]
    return found


def process_sockets(proc_root: Path, pid: int, table: dict[int, tcptable.Row]) -> list[dict[str, Any]]:
    """The TCP sockets (IPv4) process ``pid`` holds, each as the kernel's table describes it."""
    held = []
    try:
        fds = list((proc_root / str(pid) / "fd").iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if not (target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdigit()):
            continue
        row = table.get(int(target[8:-1]))
        if row is not None:
            held.append(describe_row(row))
    return sorted(held, key=lambda s: (s["local"], s["remote"]))


def describe_row(row: tcptable.Row) -> dict[str, Any]:
    return {"local": f"{row.local[0]}:{row.local[1]}", "remote": f"{row.remote[0]}:{row.remote[1]}",
            "state": tcptable.STATES.get(row.state, f"{row.state:02X}"), "rx_queue": row.rx_queue,
            "tx_queue": row.tx_queue}


# Counters: /proc/net -----------------------------------------------------------------------------

def parse_snmp(text: str, prefix: str) -> dict[str, int]:
    """The ``prefix:`` header/value line pair of /proc/net/snmp or /proc/net/netstat."""
    lines = [line.split() for line in text.splitlines() if line.startswith(prefix + ":")]
    stats: dict[str, int] = {}
    for names, values in zip(lines[0::2], lines[1::2]):
        for name, value in zip(names[1:], values[1:]):
            stats[name] = int(value)
    return stats
