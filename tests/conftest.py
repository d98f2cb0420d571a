"""Marks each test by the folder it lives in, so `-m "not lab"` runs everything that needs no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

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
