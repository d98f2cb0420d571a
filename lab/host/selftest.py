"""``lab selftest``: the mutation suite that keeps the fault proofs honest.

For every weakened fault in :mod:`lab.inlab.mutants` it runs each scenario that uses that fault
with the mutant in the fault's place, and classifies the run:

=============  ===========================================================================
``proof``      a fidelity proof failed (with the run not aborted): the mutant was caught
``oracle``     every proof held, only an implementation's oracle failed: a weak proof
``abort``      the run aborted before the proofs were judged
``missed``     everything held: the proofs would not notice this weaker fault
``unused``     the run never applied the mutated fault (the scenario did not use it)
=============  ===========================================================================

Only ``proof`` counts as caught. The run itself goes through the same path as ``lab run``
(:func:`lab.host.runner_handle.run_scenario`), which is passed in, so the classification is
unit-tested with made-up reports and no Docker::

    rows = run_suite(lambda name, mutant: run_scenario(lab, name, mutant=mutant), plan(...))
    print(render(rows))
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from lab.inlab import mutants as mutant_catalogue
from lab.inlab import scenario as scn
from lab.inlab.mutants import Mutant
from lab.inlab.runreport import RunReport

Caught = Literal["proof", "oracle", "abort", "missed", "unused"]
_APPLY = re.compile(r"""\.apply\(\s*["']([a-z-]+)["']""")
_SHARED = re.compile(r"^from lab\.scenarios import (_[a-z_]+)", re.M)


@dataclasses.dataclass(frozen=True)
class Row:
    fault: str
    mutant: str
    scenario: str
    caught: Caught
    by: str            # the proof that failed, or why the row is not caught
    seconds: float

    @property
    def ok(self) -> bool:
        return self.caught == "proof"


def faults_used(found: dict[str, scn.Scenario]) -> dict[str, list[str]]:
    """Fault name -> the scenarios whose file applies it (read from the files' ``ctx.apply("...")``,
    and from the shared ``lab/scenarios/_*.py`` modules a file imports, which run it for several)."""
    used: dict[str, list[str]] = {}
    for name, scenario in found.items():
        text = scenario.source.read_text(encoding="utf-8")
        for shared in sorted(set(_SHARED.findall(text))):
            helper = scenario.source.parent / f"{shared}.py"
            if helper.is_file():
                text += "\n" + helper.read_text(encoding="utf-8")
        for fault in sorted(set(_APPLY.findall(text))):
            used.setdefault(fault, []).append(name)
    return used


def plan(found: dict[str, scn.Scenario], *, faults: Sequence[str] = (), scenarios: Sequence[str] = (),
         catalogue: Iterable[Mutant] = mutant_catalogue.CATALOGUE) -> list[tuple[Mutant, str]]:
    """Every (mutant, scenario) pair to run, limited to the faults and scenarios named (none: all)."""
    used = faults_used(found)
    pairs = []
    for mutant in catalogue:
        if faults and mutant.fault not in faults:
            continue
        for name in used.get(mutant.fault, []):
            if not scenarios or name in scenarios:
                pairs.append((mutant, name))
    return pairs


def classify(report: RunReport, fault: str) -> tuple[Caught, str]:
    """How one mutant run ended, and which proof (or what else) decided it."""
    applied = any(str(event.get("what", "")).startswith(f"fault: {fault}") for event in report["timeline"])
    if not applied:
        return "unused", f"the run never applied {fault}"
    if report.get("aborted"):
        return "abort", str(report["aborted"])
    failed = [c for c in report["fidelity"] if not c["ok"]]
    if failed:
        return "proof", "; ".join(f"{c['name']} ({c['detail']})" if c["detail"] else c["name"] for c in failed)
    if not report["fidelity"]:
        return "proof", "no fidelity proof was recorded"
    oracles = [f"{impl}: {c['name']}" for impl, v in report["verdicts"].items() for c in v["checks"] if not c["ok"]]
    if oracles:
        return "oracle", "; ".join(oracles)
    return "missed", "every proof and oracle held"


def run_suite(run: Callable[[str, str], RunReport], pairs: Sequence[tuple[Mutant, str]], *,
              clock: Callable[[], float] = time.monotonic,
              progress: Callable[[int, int, Mutant, str], None] | None = None) -> list[Row]:
    """Run every pair with ``run(scenario, "FAULT:MUTANT")`` and classify each report."""
    rows = []
    for i, (mutant, name) in enumerate(pairs, start=1):
        if progress is not None:
            progress(i, len(pairs), mutant, name)
        started = clock()
        report = run(name, mutant.key)
        caught, by = classify(report, mutant.fault)
        rows.append(Row(mutant.fault, mutant.name, name, caught, by, round(clock() - started, 1)))
    return rows


def missing_mutants(found: dict[str, scn.Scenario],
                    catalogue: Iterable[Mutant] = mutant_catalogue.CATALOGUE) -> list[str]:
    """Faults used by a scenario that have fewer than two mutants (the suite's own minimum)."""
    counts: dict[str, int] = {}
    for mutant in catalogue:
        counts[mutant.fault] = counts.get(mutant.fault, 0) + 1
    return sorted(f for f in faults_used(found) if counts.get(f, 0) < 2)


def render(rows: Sequence[Row]) -> str:
    """The table: fault, mutant, scenario, what caught it (the proof), time; then the totals."""
    head = ("fault", "mutant", "scenario", "caught", "seconds", "by")
    table = [head] + [(r.fault, r.mutant, r.scenario, r.caught, f"{r.seconds:.1f}", r.by) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in table]
    caught = sum(r.ok for r in rows)
    lines.append(f"{caught} of {len(rows)} mutant runs caught by a fidelity proof")
    return "\n".join(lines)
