"""The in-lab runner's ``run NAME --source -``: a scenario file that is not in the image, read from stdin."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lab.inlab import runner
from lab.inlab import scenario
from lab.inlab.scenario import ScenarioError

DATA = Path(__file__).parent / "data"
SOURCE = b'''
from lab.inlab.scenario import Expect
NAME = "my-case"
TITLE = "Mine"
HOWTO = "When Sockets Die"
WIRE = "What happens on the wire."
INJECTION = "How the lab does it."
PATH = "direct"
EXPECT = {"robust": Expect("error", ("ConnectRefused",))}
REMEMBER = "One line."
def run(ctx):
    pass
'''


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_load_source_writes_the_file_under_its_name_and_loads_it(tmp_path: Path) -> None:
    chosen = scenario.load_source("my-case", SOURCE, tmp_path)
    assert chosen.name == "my-case" and chosen.source == tmp_path / "my_case.py"
    assert (tmp_path / "my_case.py").read_bytes() == SOURCE


@pytest.mark.parametrize("name", ["../etc/x", "My-Case", ""])
def test_load_source_refuses_a_name_that_is_no_scenario_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScenarioError, match=f"scenario name {name!r} is not accepted"):
        scenario.load_source(name, SOURCE, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_runner_runs_the_scenario_read_from_stdin(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}

    def run(chosen, impls, **_kwargs):  # type: ignore[no-untyped-def]
        seen["name"], seen["file"] = chosen.name, chosen.source
        seen["there"] = chosen.source.read_bytes()
        return json.loads((DATA / "refused_report.json").read_text())

    monkeypatch.setattr(runner, "run", run)
    _stdin(monkeypatch, SOURCE)
    assert runner.main(["run", "my-case", "--source", "-", "--json"]) == 0
    assert seen["name"] == "my-case" and seen["there"] == SOURCE
    assert not seen["file"].exists()   # the temporary folder is gone once the run is over
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["ok"] is True


def test_the_runner_refuses_a_broken_file_from_stdin_with_the_usage_exit(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a broken file was run"))
    _stdin(monkeypatch, b'NAME = "my-case"\nraise KeyError("x")\n')
    assert runner.main(["run", "my-case", "--source", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab.inlab.runner: ") and err.rstrip().endswith(
        "my_case.py: importing it raised KeyError: 'x' (line 2)")
