"""Marks each test by the folder it lives in, so `-m "not lab"` runs everything that needs no Docker.

Also makes SIGTERM (a CI job cancelled, a `kill`) and SIGHUP (the terminal closed, the SSH
session dropped) end the session the way Ctrl-C does, so the lab fixtures' clean-up runs
instead of leaving containers behind.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):   # one set on purpose (nohup's SIG_IGN) stays
            signal.signal(sig, _terminate)

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
