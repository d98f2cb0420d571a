"""How the fault agent runs programs: iptables to completion with a deadline, tcpdump in the background.

:class:`CommandRunner` is the real runner; :class:`RunsCommands` is what the
agent needs from one, so unit tests pass a fake that starts nothing.
:func:`isolate` runs ``ip route`` once at start to cut the namespace off from
everything but the lab.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from lab.inlab.agent.procfs import read_processes
from lab.inlab.health import default_routes

COMMAND_TIMEOUT = 10.0           # every iptables run


def isolate() -> list[str]:
    """Delete every default route in this namespace; returns what was removed."""
    removed = []
    for family in ("-4", "-6"):
        while True:
            res = subprocess.run(["ip", family, "route", "del", "default"], capture_output=True, text=True,
                                 timeout=10)
            if res.returncode != 0:
                break
            removed.append(f"ip {family} default")
    left = default_routes()
    if left:
        raise SystemExit(f"agent: could not remove default routes {left}; it needs CAP_NET_ADMIN")
    return removed


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Process(Protocol):
    """The part of :class:`subprocess.Popen` a capture uses (fakes implement just this)."""

    pid: int
    stderr: IO[bytes] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class RunsCommands(Protocol):
    """What the agent needs from a command runner; unit tests pass a fake that starts nothing."""

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> Completed: ...
    def spawn(self, argv: Sequence[str]) -> Process: ...
    def forget(self, pid: int) -> None: ...


class CommandRunner:
    """Runs iptables (to completion, with a deadline) and tcpdump (in the background).

    It also knows every child it started, so that :meth:`reap_orphans` (needed
    when the agent is PID 1 of its namespace) never steals the exit status of a
    command that :meth:`run` is still waiting for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._own: set[int] = set()

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> Completed:
        with self._lock:
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
            except FileNotFoundError:
                return Completed(127, "", f"{argv[0]}: command not found")
            self._own.add(proc.pid)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return Completed(124, "", f"{' '.join(argv)}: no answer within {timeout:g} s")
        finally:
            self.forget(proc.pid)
        return Completed(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def spawn(self, argv: Sequence[str]) -> Process:
        """Start a long-running command; its stderr is a pipe the caller must drain."""
        with self._lock:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            self._own.add(proc.pid)
        return proc

    def forget(self, pid: int) -> None:
        with self._lock:
            self._own.discard(pid)

    def reap_orphans(self, proc_root: Path = Path("/proc")) -> list[int]:
        """Reap zombie children this runner did not start (orphans adopted by PID 1)."""
        reaped = []
        me = os.getpid()
        with self._lock:
            for info in read_processes(proc_root, with_cmdline=False):
                if info.state == "Z" and info.ppid == me and info.pid not in self._own:
                    try:
                        if os.waitpid(info.pid, os.WNOHANG)[0]:
                            reaped.append(info.pid)
                    except ChildProcessError:
                        pass
        return reaped
