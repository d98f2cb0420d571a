"""`--shard 1/2` and `--shard 2/2` for real, merged: together exactly the tests one unsharded run has.

What the CI matrix does with three shards and `lab.reports.junit_merge`, on a file that needs no
Docker (tests/unit/test_shards.py), in subprocesses so each run is a whole pytest session with
the project's conftest and pyproject settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.reports.junit_merge import load, merge

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests/unit/test_shards.py"


def _run(junit: Path, *shard: str) -> str:
    # PYTEST_ADDOPTS is the outer session's (it may hold a --shard of its own): not this run's.
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}
    done = subprocess.run([sys.executable, "-m", "pytest", TARGET, *shard, f"--junitxml={junit}",
                           "-p", "no:cacheprovider", "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _cases(root: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(case.get("classname"), case.get("name")) for case in root.iter("testcase")]


@pytest.mark.slow   # three whole pytest sessions: about 6 s
def test_two_shards_merged_are_the_unsharded_run(tmp_path: Path) -> None:
    first, second, whole = tmp_path / "1.xml", tmp_path / "2.xml", tmp_path / "all.xml"
    out_1 = _run(first, "--shard", "1/2")
    out_2 = _run(second, "--shard", "2/2")
    _run(whole)

    shard_1 = _cases(ET.parse(first).getroot())
    shard_2 = _cases(ET.parse(second).getroot())
    unsharded = _cases(ET.parse(whole).getroot())
    assert shard_1 and shard_2                                   # both shards had work
    assert len(shard_1) + len(shard_2) == len(unsharded)
    assert abs(len(shard_1) - len(shard_2)) <= 1                 # no weights: the counts balance
    assert f"shard 1/2: {len(shard_1)} of {len(unsharded)} tests (the other shards have the rest)" in out_1
    assert f"shard 2/2: {len(shard_2)} of {len(unsharded)} tests (the other shards have the rest)" in out_2

    merged = merge([(str(first), load(first)), (str(second), load(second))])
    assert sorted(_cases(merged)) == sorted(unsharded)           # each test exactly once, none lost
    assert len(set(_cases(merged))) == len(unsharded)
    assert merged.get("tests") == str(len(unsharded))
    assert merged.get("failures") == merged.get("errors") == "0"
