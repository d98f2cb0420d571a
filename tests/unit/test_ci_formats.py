"""What `lab run --all` leaves for CI: JUnit XML, index.html, and JSON with relative paths only."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.fakes import with_serial_pool
from click.testing import CliRunner

from lab.host import cli, runner_handle
from lab.inlab import runreport, scenario
from lab.reports import junit
from lab.reports.index import render_index
from lab.reports.results import MATRIX_SCHEMA_VERSION, matrix_summary

DATA = Path(__file__).parent / "data"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def passing() -> dict[str, Any]:
    report = sample("refused")
    report.pop("pcaps")
    return report


def failing_naive(detail: str = "expected error ConnectionRefusedError; got completed") -> dict[str, Any]:
    report = passing()
    report["ok"] = False
    verdict = report["verdicts"]["naive"]
    verdict["ok"] = False
    verdict["checks"][0].update(ok=False, detail=detail)
    verdict["checks"][2].update(ok=False, detail="2 replies differed")
    return report


def unproven() -> dict[str, Any]:
    report = passing()
    report["ok"], report["fidelity_ok"] = False, False
    report["fidelity"][1].update(ok=False, detail="no RST seen")
    return report


def cases(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def test_junit_has_a_case_per_scenario_and_implementation_with_its_time() -> None:
    xml = junit.render({"refused": passing(), "reset": failing_naive()}, seconds={"refused": 2.5, "reset": 1.25})
    root = ET.fromstring(xml)
    assert xml.startswith("<?xml version='1.0' encoding='utf-8'?>")
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "lab run --all"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "time")} == {
        "tests": "4", "failures": "1", "errors": "0", "time": "3.750"}
    found = cases(xml)
    assert sorted(found) == [("refused", "naive"), ("refused", "robust"), ("reset", "naive"), ("reset", "robust")]
    assert [found[("reset", n)].get("time") for n in ("robust", "naive")] == ["1.250", "1.250"]
    assert list(found[("refused", "naive")]) == [] and list(found[("reset", "robust")]) == []
    failure = found[("reset", "naive")].find("failure")
    assert failure is not None and failure.get("type") == "verdict"
    # One failed check per line, in the attribute (kept by &#10;) and in the text.
    assert failure.get("message") == failure.text == (
        "outcome: expected error ConnectionRefusedError; got completed\nno corrupt data: 2 replies differed")


def test_junit_without_a_time_leaves_the_attribute_out() -> None:
    case = cases(junit.render({"refused": passing()}))[("refused", "robust")]
    assert case.get("time") is None


def test_an_unproven_fault_fails_every_case_of_its_scenario() -> None:
    report = unproven()
    report["verdicts"]["naive"] = failing_naive()["verdicts"]["naive"]
    found = cases(junit.render({"refused": report}))
    robust, naive = (found[("refused", n)].find("failure") for n in ("robust", "naive"))
    assert robust is not None and robust.get("type") == "fault not proven"
    assert robust.get("message") == "fault not proven: every SYN was answered with an RST: no RST seen"
    assert naive is not None and naive.get("type") == "verdict; fault not proven"
    assert naive.get("message", "").splitlines() == [
        "outcome: expected error ConnectionRefusedError; got completed", "no corrupt data: 2 replies differed",
        "fault not proven: every SYN was answered with an RST: no RST seen"]


def test_broken_files_errors_and_aborted_runs_are_errors() -> None:
    aborted = passing()
    aborted["aborted"] = "the lab stopped answering"
    xml = junit.render({"refused": aborted, "reset": {"error": "no such scenario", "ok": False},
                        "mine": {"error": "mine.py: syntax error at line 2", "ok": False, "broken": True}})
    root = ET.fromstring(xml)
    assert {k: root.get(k) for k in ("tests", "failures", "errors")} == {"tests": "4", "failures": "0", "errors": "4"}
    found = cases(xml)
    assert sorted(found) == [("mine", "scenario file"), ("refused", "naive"), ("refused", "robust"), ("reset", "run")]
    broken = found[("mine", "scenario file")].find("error")
    assert broken is not None and (broken.get("type"), broken.get("message")) == (
        "broken scenario file", "mine.py: syntax error at line 2")
    run = found[("reset", "run")].find("error")
    assert run is not None and (run.get("type"), run.get("message")) == ("run error", "no such scenario")
    stopped = found[("refused", "naive")].find("error")
    assert stopped is not None and stopped.get("message") == "aborted: the lab stopped answering"


def test_junit_escapes_markup_and_characters_xml_cannot_hold() -> None:
    nasty = 'got <script>alert("&")</script> ]]> \x00\x1b end'
    xml = junit.render({'a"<b>': failing_naive(detail=nasty)})
    failure = cases(xml)[('a"<b>', "naive")].find("failure")
    assert failure is not None
    assert failure.get("message", "").splitlines()[0] == 'outcome: got <script>alert("&")</script> ]]> \\x00\\x1b end'
    assert "<script>" not in xml and "\x00" not in xml


# --------------------------------------------------------------------------- index.html and matrix.json

def test_matrix_json_is_versioned_and_its_paths_are_relative(tmp_path: Path) -> None:
    rows = [{"scenario": "reset", "cells": {}, "fidelity": "proven", "ok": True, "detail": "",
             "results": str(tmp_path / "reset")},
            {"scenario": "mine", "cells": {}, "fidelity": "BROKEN", "ok": False, "detail": "x", "results": None}]
    summary = matrix_summary(["robust"], rows, tmp_path)
    assert summary == {"schema_version": MATRIX_SCHEMA_VERSION, "ok": False, "implementations": ["robust"],
                       "rows": [{**rows[0], "results": "reset"}, {**rows[1], "results": None}]}
    with pytest.raises(ValueError, match="is not inside the results folder"):
        matrix_summary([], [{**rows[0], "results": "/elsewhere/reset"}], tmp_path)


def test_the_index_links_each_report_that_exists_and_escapes_every_value() -> None:
    rows = [{"scenario": "reset", "cells": {"robust": "PeerReset (as expected)", "naive": "FAIL: <b>"},
             "fidelity": "NOT PROVEN", "ok": False, "detail": "", "results": "reset"},
            {"scenario": "my case", "cells": {}, "fidelity": "BROKEN", "ok": False, "detail": "<syntax>",
             "results": None}]
    page = render_index(["robust", "naive"], rows, files=("matrix.json", "junit.xml"))
    assert '<td><a href="reset/report.html">reset</a></td>' in page
    assert "<td>my case</td>" in page and "my case/report.html" not in page
    assert '<td class="ok">PeerReset (as expected)</td><td class="fail">FAIL: &lt;b&gt;</td>' in page
    assert '<td class="fail">NOT PROVEN</td>' in page and "&lt;syntax&gt;" in page
    assert '<a href="matrix.json">matrix.json</a> · <a href="junit.xml">junit.xml</a>' in page
    assert "0 of 2 scenarios passed" in page
    # Readable without a network: nothing is fetched, every link stays in the folder.
    assert "http" not in page and "<link" not in page and "<script" not in page and 'href="/' not in page


# --------------------------------------------------------------------------- the command

def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.fixture
def two_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Docker: two of the lab's scenarios and a broken file; "reset" fails its naive verdict."""
    found, _ = scenario.survey()
    chosen = {name: found[name] for name in ("refused", "reset")}
    monkeypatch.setattr(scenario, "survey", lambda: (chosen, {"mine": ValueError("mine.py: syntax error")}))
    monkeypatch.setattr(cli, "_with_lab", lambda opts, ui, job, keep=False: job(object()))
    monkeypatch.setattr(cli, "_with_pool", with_serial_pool)

    def run_scenario(lab, name, *, impls=None, watchdog=None, timeout=None, pcaps=False,  # type: ignore[no-untyped-def]
                     source=None):
        report = copy.deepcopy(sample("refused")) if name == "refused" else failing_naive()
        report["scenario"]["name"] = name
        return report

    monkeypatch.setattr(runner_handle, "run_scenario", run_scenario)


def test_run_all_writes_junit_index_and_relative_json(two_scenarios: None, tmp_path: Path) -> None:
    base = tmp_path / "all"
    result = CliRunner().invoke(cli.cli, ["run", "--all", "--results", str(base), "--junit",
                                          str(base / "junit.xml")], catch_exceptions=False)
    assert result.exit_code == 2   # the broken file is bad input, and is told
    assert "lab: error: mine.py: syntax error" in result.stderr
    found = cases((base / "junit.xml").read_text(encoding="utf-8"))
    assert sorted(found) == [("mine", "scenario file"), ("refused", "naive"), ("refused", "robust"),
                             ("reset", "naive"), ("reset", "robust")]
    assert float(found[("refused", "robust")].get("time", "-1")) >= 0
    assert found[("reset", "naive")].find("failure") is not None
    page = (base / "index.html").read_text(encoding="utf-8")
    assert '<a href="refused/report.html">refused</a>' in page and '<a href="reset/report.html">reset</a>' in page
    assert '<a href="junit.xml">junit.xml</a>' in page
    matrix = json.loads((base / "matrix.json").read_text())
    assert matrix["schema_version"] == MATRIX_SCHEMA_VERSION
    assert [row["results"] for row in matrix["rows"]] == ["refused", "reset", None]
    for row in matrix["rows"][:2]:
        assert (base / row["results"] / "report.html").is_file()
    report = json.loads((base / "reset" / "report.json").read_text())
    assert report["schema_version"] == runreport.SCHEMA_VERSION
    for document in (matrix, report):
        absolute = [s for s in _strings(document) if s.startswith(("/", str(tmp_path)))]
        assert absolute == []


def test_run_all_json_prints_the_matrix_file_and_tells_the_folder_on_stderr(two_scenarios: None,
                                                                          tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.cli, ["run", "--all", "--json", "--results", str(tmp_path)],
                                catch_exceptions=False)
    assert json.loads(result.stdout) == json.loads((tmp_path / "matrix.json").read_text())
    assert f"lab: results: {tmp_path}" in result.stderr
    assert not (tmp_path / "junit.xml").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["run", "refused"], "--junit FILE goes with --all"),
    (["run", "--all", "--impl", "{x}"], "--junit FILE is for the lab's own implementations")])
def test_junit_outside_run_all_of_the_labs_implementations_exits_2(args: list[str], says: str,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("class MySocket: pass\n")
    junit_file = tmp_path / "j.xml"
    argv = [arg.format(x=tmp_path / "x.py") for arg in args] + ["--junit", str(junit_file)]
    result = CliRunner().invoke(cli.cli, argv, catch_exceptions=False)
    assert result.exit_code == 2
    assert says in result.stderr and not junit_file.exists()


# --------------------------------------------------------------------------- the GitHub workflow

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "lab.yml"


def _jobs(text: str) -> dict[str, dict[str, list[str]]]:
    """Each job's settings (key "") and steps by name: their lines, stripped (PyYAML is not a dependency).

    A step without a name is keyed by its first line; within a job that is unique here.
    """
    jobs: dict[str, dict[str, list[str]]] = {}
    job: dict[str, list[str]] | None = None
    name = None
    lines = text.splitlines()
    for line in lines[lines.index("jobs:") + 1:]:
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":") \
                and "#" not in line:
            job = jobs.setdefault(line.strip().rstrip(":"), {"": []})
            name = ""
        elif job is None or not line.strip() or line.lstrip().startswith("#"):
            continue
        elif line.startswith("      - "):
            name = line.split("name:", 1)[1].strip() if "name:" in line else line.strip().removeprefix("- ")
            job[name] = []
        elif name == "" and line.startswith("    ") and not line.strip().startswith("steps:"):
            job[""].append(line.strip())
        elif name and line.startswith("        "):
            job[name].append(line.strip())
    return jobs


def test_the_workflow_runs_the_suite_in_three_shards_and_keeps_each_results_folder_whatever_happened() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    jobs = _jobs(text)
    assert list(jobs) == ["test", "merge"]
    test = jobs["test"]
    assert test[""] == ["runs-on: ubuntu-24.04", "timeout-minutes: 45", "strategy:", "fail-fast: false", "matrix:",
                        "shard: [1, 2, 3]"]
    assert test["Keep the results folder"] == [
        "if: always()", "uses: actions/upload-artifact@v4", "with:", "name: lab-results-${{ matrix.shard }}",
        "path: results/", "if-no-files-found: warn"]
    names = list(test)
    test_step = next(n for n in names if n.startswith("The README's test command"))
    # Each shard's JUnit lands in the folder that is kept, named by its shard, and the upload comes after the suite.
    assert test[test_step] == [
        "run: ./labw test --shard ${{ matrix.shard }}/3 --junitxml=results/pytest-junit-${{ matrix.shard }}.xml"]
    assert names.index("Keep the results folder") == names.index(test_step) + 1
    assert test["Nothing of the lab is left behind"][0] == "if: always()"
    tcpdump = next(n for n in names if n.startswith("tcpdump"))
    assert names.index(tcpdump) < names.index(test_step)
    assert any("setcap cap_net_raw,cap_net_admin=eip" in line for line in test[tcpdump])
    # Tabs are not YAML indentation: a workflow with one would not load at all.
    assert "\t" not in text


def test_the_workflows_merge_job_joins_the_three_shards_junit_files_with_nothing_installed() -> None:
    merge = _jobs(WORKFLOW.read_text(encoding="utf-8"))["merge"]
    assert merge[""] == ["needs: test", "if: always()", "runs-on: ubuntu-24.04", "timeout-minutes: 10"]
    assert list(merge)[1:] == ["uses: actions/checkout@v4", "uses: actions/setup-python@v5", "The shards' results",
                               "One JUnit file for the whole suite", "Keep the merged JUnit file"]
    assert merge["uses: actions/setup-python@v5"] == ["with:", 'python-version: "3.11"']   # and no pip install
    assert merge["The shards' results"] == ["uses: actions/download-artifact@v4", "with:",
                                            "pattern: lab-results-*", "path: shards/"]
    # Without merge-multiple, each artefact is in shards/<its name>/: the file each shard's test step wrote.
    assert merge["One JUnit file for the whole suite"] == [
        "run: >-", "python -m lab.reports.junit_merge results/pytest-junit.xml",
        "shards/lab-results-1/pytest-junit-1.xml", "shards/lab-results-2/pytest-junit-2.xml",
        "shards/lab-results-3/pytest-junit-3.xml"]
    assert merge["Keep the merged JUnit file"] == [
        "uses: actions/upload-artifact@v4", "with:", "name: pytest-junit", "path: results/pytest-junit.xml",
        "if-no-files-found: error"]
