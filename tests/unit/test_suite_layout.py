"""The test folders themselves: pytest imports tests/unit and tests/lab by file name alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_outside_a_package_share_a_name() -> None:
    # Without an __init__.py, pytest's default import mode imports a test file as a top-level module
    # named after the file, so a second file of that name aborts the whole session at collection.
    loose = [p for p in TESTS.rglob("test_*.py") if not (p.parent / "__init__.py").exists()]
    assert len(loose) > 20
    twice = sorted(name for name, n in Counter(p.name for p in loose).items() if n > 1)
    assert twice == [], f"test files with the same name in folders without __init__.py: {twice}"
