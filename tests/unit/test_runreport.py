"""The run report's one reader and writer: schema version and required keys are checked on the way in."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.inlab import runreport
from lab.inlab.runreport import ReportError
from lab.toolerrors import EXIT_SETUP

DATA = Path(__file__).parent / "data"
REPORTS = sorted(DATA.glob("*_report.json"))


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_real_reports_of_the_runner_are_read_back_whole(path: Path) -> None:
    text = path.read_text()
    report = runreport.loads(text)
    assert report["schema_version"] == runreport.SCHEMA_VERSION == 1
    assert json.loads(runreport.dumps(report)) == json.loads(text)
    assert "\n" not in runreport.dumps(report)


def test_a_report_of_another_schema_version_is_refused_naming_both_versions() -> None:
    report = json.loads(REPORTS[0].read_text())
    report["schema_version"] = 2
    with pytest.raises(ReportError, match=r"schema_version 2: this lab reads version 1"):
        runreport.check(report)
    del report["schema_version"]
    with pytest.raises(ReportError, match=r"schema_version None"):
        runreport.check(report)


def test_a_report_missing_a_required_key_names_the_key() -> None:
    report = json.loads(REPORTS[0].read_text())
    broken = copy.deepcopy(report)
    del broken["verdicts"], broken["fault_at"]
    with pytest.raises(ReportError, match=r"run report lacks fault_at, verdicts \(schema_version 1 requires "):
        runreport.check(broken)


def test_text_that_is_not_a_json_object_is_a_set_up_error_not_a_crash() -> None:
    with pytest.raises(ReportError, match=r"not JSON .*it began 'Traceback"):
        runreport.loads("Traceback (most recent call last):")
    with pytest.raises(ReportError, match=r"a run report is a JSON object; got list"):
        runreport.loads("[1, 2]")
    assert ReportError.exit_code == EXIT_SETUP


def test_the_required_keys_are_what_the_typed_dict_declares() -> None:
    assert set(runreport.REQUIRED) == set(runreport.RunReport.__required_keys__)
    assert "submissions" not in runreport.REQUIRED and "pcaps" not in runreport.REQUIRED
    assert {"schema_version", "scenario", "verdicts", "fidelity", "timeline", "fault_at"} <= set(runreport.REQUIRED)
