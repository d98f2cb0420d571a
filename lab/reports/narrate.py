"""Classroom narration for ``lab demo``: a scenario told in plain words, step by step.

Pure functions, no lab and no terminal, so the story is tested without Docker::

    steps = narrate(scenario.get("frozen-process").summary(), watchdog=12.0)
    for step in steps:
        print(step.title); print(step.text)
    ...                                         # run the scenario
    print(remember(report))                     # REMEMBER plus one sentence per verdict

The words come from the scenario file itself (WIRE, INJECTION, EXPECT and its
bounds, REMEMBER): a new scenario narrates itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lab.reports.document import expectation_line
from lab.inlab.runreport import RunReport
from lab.inlab.timeline import since_fault

__all__ = ["Step", "narrate", "verdict_sentence", "remember"]

_PATHS = {"direct": "The client talks straight to the server (no proxy in between).",
          "proxied": "The client talks to Toxiproxy, which relays every byte to the server."}
_WHO = {"robust": "the robust client (deadlines, heartbeats, typed errors)",
        "naive": "the naive client (written like the HOWTO's demonstration code: blocking, no deadlines)"}


@dataclasses.dataclass(frozen=True)
class Step:
    title: str
    text: str


def _plain(text: Any) -> str:
    return " ".join(str(text).split())


def narrate(summary: dict[str, Any], *, watchdog: float | None = None) -> list[Step]:
    """The steps told before the run, from a scenario summary (``Scenario.summary()`` or a report's)."""
    impls = list(summary.get("expect", {}))
    who = " and ".join(_WHO.get(i, i) for i in impls)
    steps = [
        Step(f"1. {summary.get('title', summary.get('name', '?'))}",
             f"This scenario illustrates the HOWTO section \"{summary.get('howto', '?')}\". "
             + _PATHS.get(str(summary.get("path")), "") + f" Running side by side: {who}."),
        Step("2. What the lab is about to do to the network", _plain(summary.get("injection", ""))),
        Step("3. What the kernel and the wire will do", _plain(summary.get("wire", ""))
             + (f"\nIn the packets, look for: {_plain(summary['look_for'])}" if summary.get("look_for") else "")),
    ]
    expectations = [f"- {impl} {expectation_line(oracle, watchdog)}."
                    for impl, oracle in summary.get("expect", {}).items()]
    if watchdog is not None:
        expectations.append(f"A call still running {watchdog:g} s after the fault counts as blocked: "
                            "the lab then shuts that socket down from outside.")
    steps.append(Step("4. What each implementation should do", "\n".join(expectations)))
    return steps


def _since_fault(report: RunReport, outcome: dict[str, Any]) -> str:
    # From the fault being in place: the lab's own time to put it there is nobody's doing.
    since = since_fault(report, outcome.get("ended_at"))
    return f" {since:.2f} s after the fault was in place" if since is not None else ""


def verdict_sentence(report: RunReport, impl: str) -> str:
    """One sentence: what ``impl`` did, and whether that is what it should have done."""
    verdict = report["verdicts"][impl]
    outcome = verdict.get("outcome", {})
    status = outcome.get("status")
    if status == "error":
        did = f"raised {outcome.get('error')}{_since_fault(report, outcome)}"
    elif status == "blocked":
        did = f"was still stuck inside a call when the {report.get('watchdog_s', '?')} s watchdog fired"
    else:
        did = f"completed {outcome.get('exchanges_ok', 0)} exchanges{_since_fault(report, outcome)}"
    if outcome.get("corrupt"):
        did += f", returning {outcome['corrupt']} corrupt replies"
    if verdict.get("ok"):
        return f"{impl} {did}, as expected (PASS)."
    failed = [c["name"] for c in verdict.get("checks", []) if not c.get("ok")]
    return f"{impl} {did}, which is NOT what it should do (FAIL: {', '.join(failed) or 'see the checks'})."


def remember(report: RunReport) -> list[str]:
    """The closing lines: the scenario's REMEMBER, then one sentence per verdict and the fault's proof."""
    lines = [f"Remember: {_plain(report.get('scenario', {}).get('remember', ''))}"]
    lines += [verdict_sentence(report, impl) for impl in report.get("verdicts", {})]
    if report.get("aborted"):
        lines.append(f"The run was aborted: {report['aborted']}.")
    elif not report.get("fidelity_ok"):
        lines.append("The lab could not prove the fault really happened, so nothing above can be trusted.")
    return lines
