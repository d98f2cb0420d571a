"""How long each container's threads waited for a CPU during a test: said when a timed test fails.

A time bound missed on a busy machine has two readings: the code under test was slow, or the
kernel kept it (or the proxy, or the server) off the CPU. The kernel counts the second one for
every thread, in the second field of /proc/<tid>/schedstat (nanoseconds spent runnable, waiting
for a CPU). This module sums it per container, over the threads its cgroup lists, before and after
a test; a failed timed test's report then says which containers waited and for how long, so a
red run can be told apart from a slow lesson without reproducing it.

It only reads. It never changes a verdict: the test failed or passed on its own assertions.

    before = snapshot()
    ...                                # the test
    print(describe(waits(before, snapshot()), elapsed_s))
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

# Where a container's threads are listed, by cgroup version and Docker's cgroup driver. A glob
# whose parent folder's name (or the part of it after "docker-") is the container's id.
_THREAD_LISTS = (
    "cpu/docker/*/tasks",                          # v1, cgroupfs driver (these machines)
    "cpu/system.slice/docker-*.scope/tasks",       # v1, systemd driver
    "docker/*/cgroup.threads",                     # v2, cgroupfs driver
    "system.slice/docker-*.scope/cgroup.threads",  # v2, systemd driver
)
THIS_PROCESS = "this test process"


@dataclasses.dataclass(frozen=True)
class Usage:
    """Nanoseconds on a CPU and waiting for one, summed over a group's threads."""
    ran_ns: int
    waited_ns: int


def _schedstat(proc: Path, tid: str) -> Usage | None:
    try:
        fields = (proc / tid / "schedstat").read_text().split()
        return Usage(int(fields[0]), int(fields[1]))
    except (OSError, ValueError, IndexError):   # the thread ended, or no schedstat on this kernel
        return None


def _sum(proc: Path, tids: list[str]) -> Usage:
    usages = [u for u in (_schedstat(proc, tid) for tid in tids) if u is not None]
    return Usage(sum(u.ran_ns for u in usages), sum(u.waited_ns for u in usages))


def _container_id(thread_list: Path) -> str:
    name = thread_list.parent.name
    return name.removeprefix("docker-").removesuffix(".scope")


def snapshot(cgroup: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc"),
             own_pid: int | None = None) -> dict[str, Usage]:
    """Each running container's usage so far (by container id), and this process's own."""
    found: dict[str, Usage] = {}
    for pattern in _THREAD_LISTS:
        for thread_list in cgroup.glob(pattern):
            try:
                tids = thread_list.read_text().split()
            except OSError:   # the container went away between the glob and the read
                continue
            found[_container_id(thread_list)] = _sum(proc, tids)
    own = proc / str(own_pid if own_pid is not None else os.getpid()) / "task"
    try:
        found[THIS_PROCESS] = _sum(proc, [t.name for t in own.iterdir()])
    except OSError:
        pass
    return found


def waits(before: dict[str, Usage], after: dict[str, Usage]) -> dict[str, Usage]:
    """What each group that lived through both snapshots used in between, most waited first.

    Threads that ended in between take their counts with them, so a figure is a lower bound."""
    spent = {key: Usage(max(0, after[key].ran_ns - before[key].ran_ns),
                        max(0, after[key].waited_ns - before[key].waited_ns))
             for key in after if key in before}
    return dict(sorted(spent.items(), key=lambda kv: -kv[1].waited_ns))


def describe(spent: dict[str, Usage], elapsed_s: float, names: dict[str, str] | None = None,
             top: int = 6, at_least_ns: int = 50_000_000) -> str:
    """One line per group that waited at least ``at_least_ns``, the ``top`` longest waits first."""
    names = {THIS_PROCESS: THIS_PROCESS, **(names or {})}
    containers = len([key for key in spent if key != THIS_PROCESS])
    shown = [(key, u) for key, u in spent.items() if u.waited_ns >= at_least_ns][:top]
    total = sum(u.waited_ns for u in spent.values()) / 1e9
    head = (f"threads runnable but off the CPU during this test ({elapsed_s:.2f} s): {total:.2f} s in all, "
            f"over {containers} containers and this process")
    if not shown:
        return head + f"; none waited {at_least_ns / 1e6:.0f} ms or more"
    lines = [head] + [f"  {names.get(key, key[:12])}: waited {u.waited_ns / 1e9:.3f} s, ran {u.ran_ns / 1e9:.3f} s"
                      for key, u in shown]
    return "\n".join(lines)
