"""Grading your own socket code: one file in, a report card out.

A submission is one Python file with a HOWTO-style ``MySocket`` class (the
contract is in docs/grading.md). :func:`grade` checks it on the host without
running it, copies it into the client container, runs it through every
gradable scenario beside the lab's careful implementation, removes it, and
returns a :class:`ReportCard`::

    from lab.grading.card import grade, render_text
    card = grade(lab, "examples/submissions/careful.py", scenarios=["clean-close", "refused"])
    print(render_text(card))          # also render_markdown(card), card.as_dict() for JSON

    invalid_card("mine.py")           # the "invalid" card of a file the static check refuses, or None;
                                      # needs no lab: the command line calls it before starting one

The built-ins are graded the same way by name: ``grade(lab, "naive")``.

A *gradable* scenario is one that judges "naive": its workers drive any
implementation through the same connect/send/receive calls. Each run is its own
``docker compose exec`` with a bounded timeout; the in-lab runner imports the
file with a deadline and resets the lab before and after, so code that hangs,
busy-loops or raises never wedges the lab for the next run. The verdict rules
are in :mod:`lab.grading.verdicts`; the static check in :mod:`lab.grading.static`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ContextManager

from lab.grading import verdicts as gv
from lab.inlab import scenario as scn
from lab.host.engine import EngineError
from lab.grading.static import InvalidSubmission, ProgramInfo, check_program
from lab.host.runner_handle import ScenarioInputError, run_scenario
from lab.host.topology import Lab
from lab.toolerrors import UsageError
from lab.inlab.runreport import RunReport
from lab.inlab.timeline import fault_in_place

BUILTINS = ("robust", "naive", "naive-fixed", "naive-single-recv", "naive-ignore-send")
REFERENCE = "robust"
RUN_MARGIN_S = 60.0
"""Host-side limit per scenario beyond its watchdog; the in-lab runner bounds itself well inside it."""


class GradeError(UsageError):
    """The request cannot be graded as asked (unknown or ungradable scenario); the message says what is accepted."""


@dataclasses.dataclass
class ScenarioResult:
    scenario: str
    title: str
    verdict: str
    reason: str
    careful: str                           # what careful code does here
    error: str | None = None
    message: str = ""
    took_s: float | None = None
    bound_s: float | None = None
    watchdog_s: float | None = None
    exchanges_ok: int = 0
    corrupt: int = 0
    fault_proven: bool | None = None       # None: the scenario did not run (the file could not be loaded)
    fidelity: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    own_fidelity: list[dict[str, Any]] = dataclasses.field(default_factory=list)   # on its own connections

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ReportCard:
    submission: str                        # the path given, or a built-in's name
    impl: str                              # what the runner was asked to run
    valid: bool = True
    reason: str = ""                       # why the file is invalid
    framing: str | None = None
    msglen: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)   # how the file was read (an inferred FRAMING)
    results: list[ScenarioResult] = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def verdict(self) -> str:
        if not self.valid:
            return "invalid"
        return "passed" if self.results and all(r.verdict in gv.GOOD for r in self.results) else "failed"

    def totals(self) -> dict[str, int]:
        counts = Counter(r.verdict for r in self.results)
        return {v: counts[v] for v in gv.VERDICTS if counts[v]}

    def as_dict(self) -> dict[str, Any]:
        return {"submission": self.submission, "impl": self.impl, "verdict": self.verdict, "valid": self.valid,
                "reason": self.reason, "framing": self.framing, "msglen": self.msglen, "notes": list(self.notes),
                "totals": self.totals(),
                "elapsed_s": round(self.elapsed_s, 2), "results": [r.as_dict() for r in self.results]}


# Scenarios ------------------------------------------------------------------------------------------
def gradable(found: dict[str, scn.Scenario] | None = None) -> dict[str, scn.Scenario]:
    """Scenarios that can grade any code: those that judge naive (their workers drive any subject)."""
    found = found if found is not None else scn.discover()
    return {name: s for name, s in sorted(found.items())
            if "naive" in s.expect and REFERENCE in s.expect and not s.not_gradable}


def choose(names: Sequence[str] | None, found: dict[str, scn.Scenario] | None = None) -> list[scn.Scenario]:
    found = found if found is not None else scn.discover()
    ok = gradable(found)
    if not names:
        return list(ok.values())
    chosen = []
    for name in names:
        if name not in found:
            raise GradeError(f"no scenario named {name!r}; gradable scenarios: {', '.join(ok)}")
        if found[name].not_gradable:
            raise GradeError(f"scenario {name!r} cannot grade other code: {found[name].not_gradable}; gradable "
                             f"scenarios: {', '.join(ok)}")
        if name not in ok:
            raise GradeError(f"scenario {name!r} judges only {', '.join(found[name].expect)}, with workers that "
                             f"drive the robust connection itself, so it cannot grade other code; gradable "
                             f"scenarios: {', '.join(ok)}")
        chosen.append(ok[name])
    return chosen


# One report → one result ------------------------------------------------------------------------------
def result_from_report(scenario: scn.Scenario, impl: str, report: RunReport) -> ScenarioResult:
    """Read ``impl``'s outcome from a runner report and grade it."""
    yardstick = gv.careful(scenario.expect[REFERENCE])
    entry = (report.get("submissions") or {}).get(impl) or report.get("verdicts", {}).get(impl)
    base = ScenarioResult(scenario=scenario.name, title=scenario.title, verdict=gv.INCONCLUSIVE, reason="",
                          careful=yardstick, watchdog_s=report.get("watchdog_s"), fidelity=report.get("fidelity", []))
    if entry is None:
        base.reason = f"the report holds no outcome for {impl}"
        return base
    outcome = entry["outcome"]
    base.error, base.message = outcome.get("error"), outcome.get("message") or ""
    base.exchanges_ok, base.corrupt = outcome.get("exchanges_ok", 0), outcome.get("corrupt", 0)
    ran = not report.get("facts", {}).get("not_run")
    base.fault_proven = bool(report.get("fidelity_ok")) if ran else None
    # The same proofs, run again on the connections this code itself had open when the fault went in.
    base.own_fidelity = list(entry.get("fidelity") or [])
    if ran and base.own_fidelity:
        base.fault_proven = bool(base.fault_proven) and all(c["ok"] for c in base.own_fidelity)
    aborted = report.get("aborted")
    if aborted and outcome.get("status") != "blocked":
        base.reason = f"the lab could not carry out the scenario: {aborted}"
        return base
    # Careful code ran beside it: how many intact replies there were to get before the failure.
    ref = report.get("verdicts", {}).get(REFERENCE)
    reference = ref["outcome"].get("exchanges_ok") if ref and ref.get("ok") and impl != REFERENCE else None
    if ((report.get("facts") or {}).get("sandboxed") or {}).get(impl, {}).get("framing") == "fixed":
        # Fixed-length code carries the same data in more bytes (MSGLEN messages, each with its own
        # header), so a cut or a limit meets it after fewer exchanges: that count is no yardstick.
        reference = None
    # The bytes a workload must move to reach the fault, as the runner's scenario summary states them.
    reach = (report.get("scenario") or {}).get("reach_bytes")
    v = gv.decide(scenario.expect[REFERENCE], outcome, fault_at=fault_in_place(report),
                  watchdog=report.get("watchdog_s") or gv.DEFAULT_WATCHDOG_S, reference_exchanges=reference,
                  reach_bytes=reach if isinstance(reach, int) and not isinstance(reach, bool) else None)
    base.verdict, base.reason, base.took_s, base.bound_s = v.verdict, v.reason, v.took_s, v.bound_s
    if ran and not base.fault_proven:
        failed = "; ".join([*(f"{c['name']}: {c['detail']}" for c in base.fidelity if not c["ok"]),
                            *(f"on its own connection: {c['name']}: {c['detail']}" for c in base.own_fidelity
                              if not c["ok"])]) or "no evidence"
        if v.verdict in gv.GOOD or v.verdict in (gv.LATE, gv.MISSED):
            # Handling a fault that may not have happened proves nothing.
            base.verdict = gv.INCONCLUSIVE
            base.reason = f"{v.reason}; but the fault was not proven ({failed})"
        else:
            base.reason = f"{v.reason} (note: the fault was not proven: {failed})"
    return base


# Grading -------------------------------------------------------------------------------------------------
def _sandboxed(lab: Lab, info: ProgramInfo) -> Any:
    """A fresh sandbox for one scenario, holding the program the static check passed."""
    from lab.host.sandbox import Sandbox

    return Sandbox(lab, info.path, info.kind)


def _run_one(lab: Lab, s: scn.Scenario, impl: str, watchdog: float | None) -> tuple[ScenarioResult, RunReport | None]:
    impls = [REFERENCE] if impl == REFERENCE else [REFERENCE, impl]
    limit = (watchdog or s.watchdog or gv.DEFAULT_WATCHDOG_S) + RUN_MARGIN_S
    try:
        report = run_scenario(lab, s.name, impls=impls, watchdog=watchdog, timeout=limit)
    except (ScenarioInputError, EngineError, ValueError) as exc:
        # ValueError: the report line could not be parsed (the code under test may print anything).
        return ScenarioResult(scenario=s.name, title=s.title, verdict=gv.INCONCLUSIVE,
                              reason=f"the lab could not run it: {exc}", careful=gv.careful(s.expect[REFERENCE])), None
    return result_from_report(s, impl, report), report


def is_builtin(path: str | Path) -> bool:
    """A built-in implementation's name (graded by name, no file), not a path."""
    return str(path) in BUILTINS and not Path(str(path)).suffix


def _static(path: str | Path, started: float) -> ProgramInfo | ReportCard:
    try:
        return check_program(path)
    except InvalidSubmission as exc:
        # Nothing reaches the lab: the reason is the whole report.
        return ReportCard(submission=str(path), impl="", valid=False, reason=str(exc),
                          elapsed_s=time.monotonic() - started)


def invalid_card(path: str | Path) -> ReportCard | None:
    """The card of a file the static check refuses (verdict "invalid"), or None when it may be graded.

    Needs no lab and no Docker: ``lab grade`` and ``lab run --impl`` call it before they
    start anything, so an invalid file never brings the lab up. A built-in's name: None.
    """
    if is_builtin(path):
        return None
    checked = _static(path, time.monotonic())
    return checked if isinstance(checked, ReportCard) else None


SandboxFactory = Callable[[Lab, ProgramInfo], ContextManager[Any]]
"""Makes the sandbox one scenario's run of a program happens in: lab.host.sandbox.Sandbox, or a fake in tests."""


def prepare(path: str | Path, *, started: float | None = None) -> tuple[ReportCard, ProgramInfo | None]:
    """A submission's empty card and what the static check learnt of it (None for a built-in).

    A file the static check refuses gets its whole "invalid" card here, and no program info.
    """
    started = time.monotonic() if started is None else started
    name = str(path)
    if is_builtin(name):
        return ReportCard(submission=name, impl=name), None
    checked = _static(path, started)
    if isinstance(checked, ReportCard):
        return checked, None
    module = checked.python
    return ReportCard(submission=name, impl=f"sandbox ({checked.kind}, {checked.format})",
                      framing=module.framing if module else None, msglen=module.msglen if module else None,
                      notes=list(checked.notes)), checked


def grade_in(lab: Lab, card: ReportCard, info: ProgramInfo | None, s: scn.Scenario, *,
             watchdog: float | None = None, sandbox: SandboxFactory | None = None) -> ScenarioResult:
    """One scenario of one submission, in ``lab``: the result (the card learns an executable's framing)."""
    if info is None:
        result, _ = _run_one(lab, s, card.impl, watchdog)
        return result
    # One sandbox per scenario: whatever the code started dies with it, before the next.
    with (sandbox or _sandboxed)(lab, info) as box:
        result, report = _run_one(lab, s, box.impl, watchdog)
    if card.framing is None and report is not None:
        # An executable states its framing in its hello; the first run that got one tells the card.
        said = ((report.get("facts") or {}).get("sandboxed") or {}).get(box.impl) or {}
        card.framing, card.msglen = said.get("framing"), said.get("msglen")
    return result


def cannot_load(result: ScenarioResult) -> bool:
    """The file could not even be loaded: every other scenario would say the same."""
    return result.fault_proven is None and result.verdict in (gv.HUNG, gv.CRASHED)


def not_run(because: ScenarioResult, s: scn.Scenario) -> ScenarioResult:
    """The result for a scenario skipped because the file could not be loaded in ``because``'s."""
    return dataclasses.replace(because, scenario=s.name, title=s.title, careful=gv.careful(s.expect[REFERENCE]),
                               reason=f"not run: {because.reason}")


def check_watchdog(watchdog: float | None) -> None:
    if watchdog is not None and watchdog <= 0:
        raise GradeError(f"watchdog must be a number of seconds > 0; got {watchdog}")


def grade(lab: Lab, path: str | Path, *, scenarios: Sequence[str] | None = None, watchdog: float | None = None,
          progress: Callable[[ScenarioResult], None] | None = None,
          sandbox: SandboxFactory | None = None) -> ReportCard:
    """Grade a submission file (or a built-in by name) on the gradable scenarios; see the module docstring."""
    started = time.monotonic()
    chosen = choose(scenarios)
    check_watchdog(watchdog)
    card, info = prepare(path, started=started)
    if not card.valid:
        return card
    for s in chosen:
        result = grade_in(lab, card, info, s, watchdog=watchdog, sandbox=sandbox)
        card.results.append(result)
        if progress:
            progress(result)
        if cannot_load(result):
            card.results += [not_run(result, rest) for rest in chosen[len(card.results):]]
            break
    card.elapsed_s = time.monotonic() - started
    return card


# Rendering -------------------------------------------------------------------------------------------------
def _timing(r: ScenarioResult) -> str:
    if r.took_s is None:
        return "-"
    return f"{r.took_s:.2f} s / {r.bound_s:g} s" if r.bound_s is not None else f"{r.took_s:.2f} s"


def _heading(card: ReportCard) -> str:
    framing = f", {card.framing}" + (f" MSGLEN={card.msglen}" if card.msglen else "") if card.framing else ""
    return f"Report card: {card.submission}{framing}"


def _totals_line(card: ReportCard) -> str:
    good = sum(1 for r in card.results if r.verdict in gv.GOOD)
    counts = ", ".join(f"{v} {n}" for v, n in card.totals().items())
    return f"{card.verdict.upper()}: {good} of {len(card.results)} scenarios handled correctly ({counts})"


def render_text(card: ReportCard) -> str:
    """A plain-text table: scenario, verdict, time vs bound, evidence; then the fault evidence."""
    lines = [_heading(card), *(f"note: {note}" for note in card.notes)]
    if not card.valid:
        lines += [f"INVALID: {card.reason}", "nothing was sent to the lab"]
        return "\n".join(lines)
    rows = [("scenario", "verdict", "time / bound", "evidence")]
    rows += [(r.scenario, r.verdict, _timing(r), r.reason) for r in card.results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines.append("")
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    lines += ["", _totals_line(card), "", "what careful code does, and the proof that each fault happened:"]
    for r in card.results:
        proven = {True: "fault proven", False: "FAULT NOT PROVEN", None: "not run"}[r.fault_proven]
        lines.append(f"  {r.scenario}: {r.careful}; {proven}")
        lines += [f"    [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}" for c in r.fidelity]
        lines += [f"    [{'ok' if c['ok'] else 'FAIL'}] (its own connection) {c['name']}: {c['detail']}"
                  for c in r.own_fidelity]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(card: ReportCard) -> str:
    """The same report card as Markdown: a heading, a table, totals, the fault evidence."""
    lines = [f"## {_md(_heading(card))}", ""]
    if card.notes:
        lines += [*(f"Note: {_md(note)}" for note in card.notes), ""]
    if not card.valid:
        lines += [f"**Invalid**: {_md(card.reason)}", "", "Nothing was sent to the lab."]
        return "\n".join(lines)
    lines += ["| Scenario | Verdict | Time / bound | Evidence |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.scenario} | **{r.verdict}** | {_timing(r)} | {_md(r.reason)} |" for r in card.results]
    lines += ["", f"**{_md(_totals_line(card))}**", "", "### What careful code does, and the fault evidence", ""]
    for r in card.results:
        proven = {True: "fault proven", False: "fault NOT proven", None: "not run"}[r.fault_proven]
        lines.append(f"- **{r.scenario}** ({_md(r.title)}): {_md(r.careful)}; {proven}")
        lines += [f"  - {'✓' if c['ok'] else '✗'} {_md(c['name'])}: {_md(c['detail'])}" for c in r.fidelity]
        lines += [f"  - {'✓' if c['ok'] else '✗'} (its own connection) {_md(c['name'])}: {_md(c['detail'])}"
                  for c in r.own_fidelity]
    return "\n".join(lines)


__all__ = ["grade", "prepare", "grade_in", "cannot_load", "not_run", "invalid_card", "is_builtin", "ReportCard", "ScenarioResult", "GradeError", "render_text",
           "render_markdown", "gradable", "choose", "result_from_report", "BUILTINS"]
