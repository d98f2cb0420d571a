"""Marks each test by the folder it lives in, so `-m "not lab"` runs everything that needs no Docker.

Adds ``--shard K/N``: run only the K-th of N parts of the tests that would run, as
lab/host/shards.py splits them by node id. Every CI job computes the same split for itself, so
``--shard 1/N`` ... ``--shard N/N`` with the same other arguments run each test exactly once.

Also makes SIGTERM (a CI job cancelled, a `kill`) and SIGHUP (the terminal closed, the SSH
session dropped) end the session the way Ctrl-C does, so the lab fixtures' clean-up runs
instead of leaving containers behind.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from lab.host.shards import parse_shard, pick


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(item.fspath).relative_to(_HERE).parts[0]
        except ValueError:
            continue
        mark = _FOLDER_MARKS.get(folder)
        if mark is not None:
            item.add_marker(mark)
