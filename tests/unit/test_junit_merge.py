"""lab/reports/junit_merge.py: shards' JUnit files as one, with summed counts, no test twice, clear errors."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.reports.junit_merge import load, main, merge, parse, render

ROOT = Path(__file__).resolve().parents[2]

# As pytest --junitxml writes them (one line there; spread out here for reading).
SHARD_1 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3" time="1.250"
           timestamp="2025-01-01T10:00:00" hostname="runner-a">
<testcase classname="tests.unit.test_a" name="test_one" time="0.250" />
<testcase classname="tests.unit.test_a" name="test_two" time="1.000"><failure message="assert 1 == 2">line 1
  line 2 &lt;indented&gt;</failure></testcase>
<testcase classname="tests.unit.test_b" name="test_skip" time="0.000"><skipped message="no tcpdump" /></testcase>
</testsuite>
</testsuites>
"""
SHARD_2 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="0" skipped="0" tests="2" time="0.500"
           timestamp="2025-01-01T10:00:01" hostname="runner-b">
<testcase classname="tests.unit.test_b" name="test_one" time="0.125" />
<testcase classname="tests.unit.test_c" name="test_err" time="0.375"><error message="fixture failed" /></testcase>
</testsuite>
</testsuites>
"""
# A bare <testsuite> root, and no count attributes at all: the cases are counted instead.
BARE = """<testsuite name="other">
<testcase classname="tests.unit.test_d" name="test_x" />
<testcase classname="tests.unit.test_d" name="test_y"><failure message="no" /></testcase>
<testcase classname="tests.unit.test_d" name="test_z"><skipped /></testcase>
</testsuite>
"""


def test_the_counts_and_time_are_the_sums_and_every_suite_is_kept_as_it_was() -> None:
    root = merge([("one.xml", parse(SHARD_1, "one.xml")), ("two.xml", parse(SHARD_2, "two.xml"))])
    assert root.tag == "testsuites"
    assert root.attrib == {"tests": "5", "failures": "1", "errors": "1", "skipped": "1", "time": "1.750"}
    suites = root.findall("testsuite")
    assert [suite.get("hostname") for suite in suites] == ["runner-a", "runner-b"]
    assert suites[0].attrib == {"name": "pytest", "errors": "0", "failures": "1", "skipped": "1", "tests": "3",
                                "time": "1.250", "timestamp": "2025-01-01T10:00:00", "hostname": "runner-a"}
    assert [(case.get("classname"), case.get("name")) for case in root.iter("testcase")] == [
        ("tests.unit.test_a", "test_one"), ("tests.unit.test_a", "test_two"), ("tests.unit.test_b", "test_skip"),
        ("tests.unit.test_b", "test_one"), ("tests.unit.test_c", "test_err")]


def test_a_failures_text_survives_the_round_trip_exactly() -> None:
    text = render(merge([("one.xml", parse(SHARD_1, "one.xml"))]))
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<testsuites ")
    again = ET.fromstring(text.encode("utf-8"))
    failure = again.find("testsuite/testcase/failure")
    assert failure is not None and failure.text == "line 1\n  line 2 <indented>"
    assert failure.get("message") == "assert 1 == 2"


def test_a_bare_testsuite_root_is_accepted_and_missing_counts_are_counted_from_its_cases() -> None:
    root = merge([("bare.xml", parse(BARE, "bare.xml")), ("two.xml", parse(SHARD_2, "two.xml"))])
    assert root.attrib == {"tests": "5", "failures": "1", "errors": "1", "skipped": "1", "time": "0.500"}
    assert [suite.get("name") for suite in root.findall("testsuite")] == ["other", "pytest"]


def test_no_inputs_give_an_empty_testsuites() -> None:
    assert render(merge([])) == ("<?xml version='1.0' encoding='utf-8'?>\n"
                                 '<testsuites tests="0" failures="0" errors="0" skipped="0" time="0.000" />\n')


def test_a_case_in_two_inputs_is_an_error_naming_it_and_both_files() -> None:
    again = SHARD_2.replace('classname="tests.unit.test_c" name="test_err"',
                            'classname="tests.unit.test_a" name="test_two"')
    with pytest.raises(ValueError) as raised:
        merge([("one.xml", parse(SHARD_1, "one.xml")), ("two.xml", parse(again, "two.xml"))])
    assert str(raised.value) == ("test case tests.unit.test_a::test_two is in both one.xml and two.xml; "
                                 "each test belongs in exactly one shard's file")


def test_the_same_file_twice_is_an_overlap_too() -> None:
    with pytest.raises(ValueError) as raised:
        merge([("one.xml", parse(SHARD_1, "one.xml")), ("one.xml", parse(SHARD_1, "one.xml"))])
    assert str(raised.value) == ("test case tests.unit.test_a::test_one is in one.xml given twice; "
                                 "each test belongs in exactly one shard's file")


def test_a_case_repeated_within_one_file_is_that_runs_record_and_kept() -> None:
    twice = BARE.replace('name="test_y"', 'name="test_x"')
    root = merge([("bare.xml", parse(twice, "bare.xml"))])
    assert root.get("tests") == "3"


@pytest.mark.parametrize(("text", "message"), [
    ("<testsuites><testsuite>", "bad.xml: not well-formed XML (no element found: line 1, column 23)"),
    ("", "bad.xml: not well-formed XML (no element found: line 1, column 0)"),
    ("<html><body/></html>", "bad.xml: the root element is <html>; a JUnit file's root is <testsuites> "
                             "(as pytest --junitxml writes it) or <testsuite>"),
])
def test_a_document_that_is_not_junit_is_an_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse(text, "bad.xml")
    assert str(raised.value) == message


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("tests", "three", "has tests='three'; a count is a whole number >= 0"),
    ("failures", "-1", "has failures='-1'; a count is a whole number >= 0"),
    ("time", "soon", "has time='soon'; a time is a number of seconds"),
])
def test_a_count_or_time_that_is_not_a_number_is_an_error_naming_the_file(attribute: str, value: str,
                                                                         message: str) -> None:
    broken = f'<testsuite name="pytest" {attribute}="{value}"><testcase classname="c" name="n" /></testsuite>'
    with pytest.raises(ValueError) as raised:
        merge([("x.xml", parse(broken, "x.xml"))])
    assert str(raised.value) == f"x.xml: testsuite 'pytest' {message}"


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "pytest-junit-2.xml"
    with pytest.raises(ValueError) as raised:
        load(missing)
    assert str(raised.value) == f"{missing}: cannot be read (No such file or directory)"


def test_load_reads_the_file_by_its_declared_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.xml"
    path.write_bytes('<?xml version="1.0" encoding="iso-8859-1"?><testsuite><testcase classname="c" name="caf\u00e9"/>'
                     "</testsuite>".encode("iso-8859-1"))
    (suite,) = load(path)
    assert [case.get("name") for case in suite.iter("testcase")] == ["caf\u00e9"]


def test_main_writes_the_merged_file_into_a_new_folder_and_says_what_it_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "1.xml").write_text(SHARD_1, encoding="utf-8")
    (tmp_path / "2.xml").write_text(SHARD_2, encoding="utf-8")
    out = tmp_path / "results" / "pytest-junit.xml"
    assert main([str(out), str(tmp_path / "1.xml"), str(tmp_path / "2.xml")]) == 0
    assert ET.parse(out).getroot().attrib == {"tests": "5", "failures": "1", "errors": "1", "skipped": "1",
                                              "time": "1.750"}
    captured = capsys.readouterr()
    assert captured.out == f"junit_merge: wrote {out} from 2 files: 5 tests, 1 failures, 1 errors, 1 skipped\n"
    assert captured.err == ""


def test_main_exits_2_and_writes_nothing_when_an_input_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "1.xml").write_text(SHARD_1, encoding="utf-8")
    out = tmp_path / "merged.xml"
    assert main([str(out), str(tmp_path / "1.xml"), str(tmp_path / "3.xml")]) == 2
    assert not out.exists()
    captured = capsys.readouterr()
    assert captured.err == f"junit_merge: {tmp_path / '3.xml'}: cannot be read (No such file or directory)\n"
    assert captured.out == ""


@pytest.mark.parametrize("argv", [[], ["only-the-output.xml"]])
def test_main_without_an_input_file_exits_2_with_the_usage(argv: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == ("junit_merge: give the output file and at least one input file\n"
                                       "usage: python -m lab.reports.junit_merge OUT IN [IN...]\n")


def test_main_help_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert capsys.readouterr().out == "usage: python -m lab.reports.junit_merge OUT IN [IN...]\n"


# The CI job that merges installs nothing: setup-python's interpreter and the checkout. -S (no
# site-packages, so not even this venv's click or rich could be found) and -E (no PYTHONPATH) make
# such an interpreter here; cwd = the checkout puts `lab` on the path the way the job runs it.
BARE_PYTHON = [sys.executable, "-S", "-E"]
HOST_ONLY = ("lab.host", "lab.grading", "lab.testing", "lab.__main__")


def test_importing_it_loads_only_the_standard_library_and_stdlib_only_parts_of_lab() -> None:
    probe = ("import sys, lab.reports.junit_merge\n"
             "print('\\n'.join(sorted(sys.modules)))\n")
    done = subprocess.run([*BARE_PYTHON, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    loaded = done.stdout.split()
    outside = sorted({name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names) - {"__main__", "lab"})
    assert outside == []
    host_side = [name for name in loaded if name.startswith(HOST_ONLY)
                 or (name.startswith("lab.reports.") and name != "lab.reports.junit_merge")]
    assert host_side == []
    assert "lab.reports.junit_merge" in loaded


def test_it_runs_as_a_module_without_site_packages(tmp_path: Path) -> None:
    (tmp_path / "1.xml").write_text(SHARD_1, encoding="utf-8")
    (tmp_path / "2.xml").write_text(SHARD_2, encoding="utf-8")
    out = tmp_path / "merged.xml"
    done = subprocess.run([*BARE_PYTHON, "-m", "lab.reports.junit_merge", str(out), str(tmp_path / "1.xml"),
                           str(tmp_path / "2.xml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert ET.parse(out).getroot().get("tests") == "5"
    failed = subprocess.run([*BARE_PYTHON, "-m", "lab.reports.junit_merge", str(out), str(tmp_path / "9.xml")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert failed.stderr == f"junit_merge: {tmp_path / '9.xml'}: cannot be read (No such file or directory)\n"
