"""``lab run --all --junit FILE``: the matrix as JUnit XML, for CI systems that show test results.

Sans-IO: the reports in, the XML text out (the CLI writes the file). ::

    from lab.reports.junit import render
    xml = render(reports, seconds={"reset": 4.2})   # reports: scenario -> its run report, as _run_all holds them

One ``<testcase>`` per scenario × judged implementation (classname = the scenario, name = the
implementation); ``time`` is the seconds the scenario's run took, where known: the
implementations of a scenario run side by side, so each of its cases has the scenario's time.

- a failed verdict is a ``<failure>`` whose message is its failed checks, one per line;
- a fault that was not proven adds its failed proofs to the ``<failure>`` of every case of the
  scenario, not a separate "fault proof" case: a pass where the fault never happened shows
  nothing about the implementation, and a CI page that counts cases would show it green;
- a run that aborted is an ``<error>`` on each case (it did not finish: no verdict is the
  implementation's own); a scenario that could not run at all is one ``<error>`` case named
  "run", and a scenario file that would not load one named "scenario file".

Everything is built with :mod:`xml.etree.ElementTree`, which escapes markup; characters XML 1.0
cannot hold at all (NUL and most control characters) are written as ``\\xNN`` first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from lab.inlab import timeline as tl
from lab.inlab.runreport import RunReport

__all__ = ["render", "SUITE_NAME", "BROKEN_CASE", "RUN_CASE"]

SUITE_NAME = "lab run --all"
BROKEN_CASE = "scenario file"
RUN_CASE = "run"

# Not allowed in an XML 1.0 document even as a character reference: a parser would refuse the file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _failed_lines(checks: list[dict[str, Any]], report: RunReport, impl: str | None) -> list[str]:
    return [f"{c.get('name', '?')}: {tl.detail_of(c, report, impl)}" for c in checks if not c.get("ok")]


def _fault_lines(report: RunReport) -> list[str]:
    if report.get("fidelity_ok"):
        return []
    lines = _failed_lines(report.get("fidelity") or [], report, None)
    return [f"fault not proven: {line}" for line in lines] or ["fault not proven: no evidence was recorded"]


def _case(suite: ET.Element, scenario: str, name: str, seconds: float | None) -> ET.Element:
    attrs = {"classname": _text(scenario), "name": _text(name)}
    if seconds is not None:
        attrs["time"] = f"{seconds:.3f}"
    return ET.SubElement(suite, "testcase", attrs)


def _outcome(case: ET.Element, tag: str, kind: str, lines: list[str]) -> None:
    message = _text("\n".join(lines))
    element = ET.SubElement(case, tag, {"message": message, "type": kind})
    element.text = message


def _cases(suite: ET.Element, scenario: str, report: RunReport, seconds: float | None) -> None:
    if report.get("broken"):
        _outcome(_case(suite, scenario, BROKEN_CASE, None), "error", "broken scenario file",
                 [str(report.get("error", "the scenario file would not load"))])
        return
    verdicts = report.get("verdicts") or {}
    if report.get("error") or not verdicts:
        _outcome(_case(suite, scenario, RUN_CASE, seconds), "error", "run error",
                 [str(report.get("error") or report.get("aborted") or "the run judged no implementation")])
        return
    fault = _fault_lines(report)
    for impl, verdict in verdicts.items():
        case = _case(suite, scenario, impl, seconds)
        if report.get("aborted"):
            _outcome(case, "error", "aborted", [f"aborted: {report['aborted']}"])
            continue
        failed = [] if verdict.get("ok") else (_failed_lines(verdict.get("checks") or [], report, impl)
                                               or ["the verdict failed"])
        kinds = [kind for kind, lines in (("verdict", failed), ("fault not proven", fault)) if lines]
        if kinds:
            _outcome(case, "failure", "; ".join(kinds), failed + fault)


def render(reports: dict[str, RunReport], *, seconds: dict[str, float] | None = None) -> str:
    """The JUnit XML document (with its XML declaration) for ``lab run --all``'s reports.

    ``reports`` maps a scenario to its report, or to ``{"error": message}`` when it could not
    run, or ``{"error": message, "broken": True}`` when its file would not load.
    """
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME})
    for scenario, report in reports.items():
        _cases(suite, scenario, report, (seconds or {}).get(scenario))
    cases = suite.findall("testcase")
    counts = {"tests": len(cases), "failures": sum(1 for c in cases if c.find("failure") is not None),
              "errors": sum(1 for c in cases if c.find("error") is not None), "skipped": 0}
    # Each scenario's time once: its cases ran side by side, so adding the cases' times would overcount.
    total = sum((seconds or {}).get(scenario, 0.0) for scenario in reports)
    for element in (root, suite):
        element.attrib.update({k: str(v) for k, v in counts.items()})
        element.set("time", f"{total:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
