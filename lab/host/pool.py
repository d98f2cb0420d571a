"""Several labs side by side, and work spread over them: how ``--jobs N`` runs scenarios at once.

A :class:`LabPool` is a plain context manager over N :class:`~lab.host.topology.Lab` objects,
each its own compose project (``NAME``, ``NAME-j2`` ... ``NAME-jN``), brought up together and
taken down together::

    with LabPool(repo, "socket-lab", jobs=4) as pool:
        reports = pool.map(names, lambda lab, name: run_scenario(lab, name), cost=durations.get)

Why a lab per job, and not several server instances, proxies and agent rules within one lab:
every fault here lives in a kernel namespace of one lab host. The server's iptables rules and
its paused process, the router's conntrack table, its timeouts and its NFQUEUE, the client's
port range, the Toxiproxy process: two scenarios in one lab would share all of them, and a
proof that counts packets on a chain would count the other scenario's packets too. Separate
labs are separated by the kernel itself (network, process and mount namespaces), so a fault
cannot leak by construction, and each scenario runs exactly the code it runs serially. The
cost is one bring-up per lab, made in parallel (a few seconds, measured by
``benchmarks/bench_lab.py``), and about 9 containers of memory per lab.

:meth:`LabPool.map` hands each lab the next item from one queue, longest expected first
(the classic LPT rule), so the slowest scenario starts at once and the short ones fill the
gaps; the results come back keyed by item whatever order they finished in. The first item
that raises stops the queue (the others' workers finish their current item), and the
exception is raised again in the caller's thread. Ctrl-C in the caller stops handing out
items; ``__exit__`` then takes every lab down, which ends whatever still runs in them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from lab.host.engine import EngineError, Runner
from lab.host.topology import SERVICES, Lab, check_project_name

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

MAX_JOBS = 16


def check_jobs(jobs: int) -> int:
    if not 1 <= jobs <= MAX_JOBS:
        raise ValueError(f"--jobs {jobs}: give a number of labs from 1 to {MAX_JOBS} "
                         f"(each lab is {len(SERVICES)} containers)")
    return jobs


def project_names(project: str, jobs: int) -> list[str]:
    """The compose projects of a pool: the project itself first, then ``PROJECT-j2`` ... ``PROJECT-jN``."""
    check_project_name(project)
    return [project] + [f"{project}-j{i}" for i in range(2, check_jobs(jobs) + 1)]


def lpt_order(items: Iterable[K], cost: Callable[[K], float | None] | None = None) -> list[K]:
    """Longest expected first; ties (and unknown costs, counted as 0) keep their given order."""
    listed = list(items)
    if cost is None:
        return listed
    return sorted(listed, key=lambda item: -(cost(item) or 0.0))


class LabPool:
    """N labs, up together, down together; see the module docstring."""

    def __init__(self, repo: Path, project: str, jobs: int, *, runner: Runner | None = None,
                 make_lab: Callable[[str], Lab] | None = None, log: Callable[[str], None] | None = None,
                 keep: bool = False) -> None:
        self.projects = project_names(project, jobs)
        factory = make_lab or (lambda name: Lab(repo, project=name, runner=runner))
        self.labs = [factory(name) for name in self.projects]
        self.log = log or (lambda _msg: None)
        self.keep = keep
        self.up_seconds: float | None = None
        self._started: list[Lab] = []      # the labs this pool brought up (taken down on exit)
        self._stop = threading.Event()

    @property
    def started(self) -> list[Lab]:
        """The labs this pool brought up (and will take down), not those that were running already."""
        return list(self._started)

    # Up and down -----------------------------------------------------------------------------
    def __enter__(self) -> "LabPool":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if not self.keep:
            self.down()

    def up(self) -> None:
        """Bring every lab up at once (one thread each); the first failure is raised after all have tried."""
        started = time.monotonic()
        errors: list[BaseException] = []
        was_up = {lab.project: running(lab) for lab in self.labs}
        self._started = [lab for lab in self.labs if not was_up[lab.project]]

        def bring_up(lab: Lab) -> None:
            try:
                lab.up()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)

        _all_at_once(bring_up, self.labs)
        if errors:
            raise errors[0]
        self.up_seconds = time.monotonic() - started

    def down(self) -> None:
        """Take down every lab this pool started, all at once."""
        _all_at_once(lambda lab: lab.down(), list(self._started))
        self._started = []

    # Work ------------------------------------------------------------------------------------
    def map(self, items: Sequence[K], work: Callable[[Lab, K], R], *,
            cost: Callable[[K], float | None] | None = None,
            done: Callable[[K, R, float], None] | None = None) -> dict[K, R]:
        """``work(lab, item)`` for every item, each lab doing one at a time; results keyed by item.

        ``cost`` is an item's expected seconds (longest first); ``done(item, result, seconds)``
        is told as each one finishes, from the worker's thread.
        """
        pending: queue.SimpleQueue[K] = queue.SimpleQueue()
        for item in lpt_order(items, cost):
            pending.put(item)
        results: dict[K, R] = {}
        failures: list[BaseException] = []
        lock = threading.Lock()

        def worker(lab: Lab) -> None:
            while not self._stop.is_set():
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                began = time.monotonic()
                try:
                    result = work(lab, item)
                except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                    with lock:
                        failures.append(exc)
                    self._stop.set()
                    return
                with lock:
                    results[item] = result
                if done is not None:
                    done(item, result, time.monotonic() - began)

        self._stop.clear()
        try:
            _all_at_once(worker, self.labs)
        except BaseException:
            self._stop.set()   # Ctrl-C: no lab takes another item; the caller takes the labs down
            raise
        if failures:
            raise failures[0]
        return {item: results[item] for item in items if item in results}


def running(lab: Lab) -> bool:
    """Whether any of the lab's containers runs (a lab that cannot even be asked is not running)."""
    try:
        return any(row.get("State") == "running" for row in lab.status())
    except EngineError:
        return False


def _all_at_once(fn: Callable[[Any], None], things: Sequence[Any]) -> None:
    """``fn(thing)`` for each thing on its own thread; returns when all have finished.

    The threads are daemons and the wait is in short slices, so Ctrl-C reaches the caller at
    once (and the pool's ``__exit__`` takes the labs down) instead of waiting for the work.
    """
    if len(things) == 1:
        fn(things[0])
        return
    threads = [threading.Thread(target=fn, args=(thing,), daemon=True) for thing in things]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)
