"""Marks each test by the folder it lives in, so `-m "not lab"` runs everything that needs no Docker.

Adds ``--shard K/N``: run only the K-th of N parts of the tests that would run, as
lab/host/shards.py splits them by node id. Every CI job computes the same split for itself, so
``--shard 1/N`` ... ``--shard N/N`` with the same other arguments run each test exactly once.

Orders the CPU-bound tests (tests/unit, and any marked ``cpu_bound``) before the timed ones
(tests/lab and tests/loopback), in every run. Under pytest-xdist it also lets the workers run
tests of one kind at a time (tests/support/rooms.py): a timed test never shares the CPUs with a
CPU-bound one. Timed tests still share them with each other, so each of their time bounds and
proofs has to allow for a busy machine in its own way; the rooms only take away the load that
has nothing to do with the lab.

A timed test that fails says in its report how long each container's threads (and its own)
waited for a CPU while it ran (tests/support/cpu_wait.py): a bound missed because the machine was
busy reads differently from one missed by slow code.

Also makes SIGTERM (a CI job cancelled, a `kill`) and SIGHUP (the terminal closed, the SSH
session dropped) end the session the way Ctrl-C does, so the lab fixtures' clean-up runs
instead of leaving containers behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.host.shards import parse_shard, pick
from tests.support import cpu_wait, rooms


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shard", metavar="K/N", default=None,
                     help="run only part K of N (1 <= K <= N) of the tests that would run; the parts are the "
                          "same in every run, so 1/N ... N/N together run each test once")


def pytest_configure(config: pytest.Config) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):   # one set on purpose (nohup's SIG_IGN) stays
            signal.signal(sig, _terminate)
    spec = config.getoption("shard")
    if spec is not None:
        try:
            k, n = parse_shard(spec)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
        config.pluginmanager.register(_Shard(k, n), "lab-shard")
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("PYTEST_XDIST_TESTRUNUID"):
        rooms.install(rooms.Rooms(_rooms_path(os.environ["PYTEST_XDIST_TESTRUNUID"])))


def _rooms_path(testrunuid: str) -> Path:
    return Path(tempfile.gettempdir()) / f"lab-test-rooms-{testrunuid}.json"


def pytest_sessionfinish(session: pytest.Session) -> None:
    # The xdist controller, once its workers are done, removes the room file they shared.
    uid = getattr(session.config, "workerinput", None) is None and _controller_testrunuid(session.config)
    if uid:
        _rooms_path(uid).unlink(missing_ok=True)


def _controller_testrunuid(config: pytest.Config) -> str | None:
    dsession = config.pluginmanager.getplugin("dsession")
    nodemanager = getattr(dsession, "nodemanager", None)
    return getattr(nodemanager, "testrunuid", None)


class _Shard:
    """The ``--shard K/N`` plugin: keeps shard K's tests after collection, deselects the others.

    A plugin object of its own rather than this file's hooks because it must run *last* among
    the collection hooks (after ``-m``/``-k`` have deselected theirs, so the shards split what will
    actually run), while the folder marks below must come *before* ``-m`` looks at them.

    Under pytest-xdist each worker collects and runs this hook itself; the split depends on the
    node ids alone, so every worker keeps the same tests, as xdist requires.
    """

    def __init__(self, k: int, n: int) -> None:
        self.k, self.n = k, n
        self.kept: int | None = None
        self.collected: int | None = None

    def pytest_report_header(self) -> str:
        return f"shard: {self.k}/{self.n} (lab/host/shards.py splits the tests by node id)"

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # Two items can share a node id (the same file given twice with --keep-duplicates): they
        # go to the same shard, rather than the split refusing the duplicate.
        nodeids = list(dict.fromkeys(item.nodeid for item in items))
        mine = set(pick(nodeids, self.k, self.n))
        kept = [item for item in items if item.nodeid in mine]
        others = [item for item in items if item.nodeid not in mine]
        self.kept, self.collected = len(kept), len(items)
        if others:
            config.hook.pytest_deselected(items=others)
        items[:] = kept

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.collected is None:   # the xdist controller: its workers chose the tests
            terminalreporter.write_line(f"shard {self.k}/{self.n}: its tests were chosen in each worker")
            return
        terminalreporter.write_line(f"shard {self.k}/{self.n}: {self.kept} of {self.collected} tests "
                                    "(the other shards have the rest)")


_HERE = Path(__file__).parent
_FOLDER_MARKS = {"lab": pytest.mark.lab, "loopback": pytest.mark.loopback}


_TIMED_FOLDERS = ("lab", "loopback")


def kind(item: pytest.Item) -> str:
    """"timed" for a test that measures time (tests/lab, tests/loopback), "cpu" for one that keeps the
    CPUs busy (tests/unit, or marked cpu_bound)."""
    if item.get_closest_marker("cpu_bound") is not None:
        return "cpu"
    return "timed" if any(item.get_closest_marker(f) is not None for f in _TIMED_FOLDERS) else "cpu"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(item.fspath).relative_to(_HERE).parts[0]
        except ValueError:
            continue
        mark = _FOLDER_MARKS.get(folder)
        if mark is not None:
            item.add_marker(mark)
    # CPU-bound first, each kind in its own order: the timed tests then find the room theirs.
    items.sort(key=lambda item: kind(item) != "cpu")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Outside pytest-timeout's own wrapper: waiting for the room is not the test's time.
    room = rooms.current()
    if room is None:
        yield
        return
    with room.enter(kind(item)):
        yield


_CPU_WAIT = pytest.StashKey[tuple[dict[str, cpu_wait.Usage], dict[str, cpu_wait.Usage], float]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if kind(item) != "timed":
        yield
        return
    before, began = cpu_wait.snapshot(), time.monotonic()
    yield
    item.stash[_CPU_WAIT] = (before, cpu_wait.snapshot(), time.monotonic() - began)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or _CPU_WAIT not in item.stash:
        return
    before, after, elapsed = item.stash[_CPU_WAIT]
    spent = cpu_wait.waits(before, after)
    report.sections.append(("CPU wait", cpu_wait.describe(spent, elapsed, _container_names(list(spent)))))


def _container_names(ids: list[str]) -> dict[str, str]:
    """Container ids to names, asked of Docker once, for a failed test's report; {} if it cannot say."""
    ids = [i for i in ids if i != cpu_wait.THIS_PROCESS]
    if not ids:
        return {}
    try:
        done = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.Name}}", *ids],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    pairs = (line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return {cid: name.lstrip("/") for cid, name in pairs}
