"""Grading a class: many submissions, each in every gradable scenario, spread over a pool of labs.

The unit of work is one submission in one scenario, so a pool of N labs stays busy to the
end whatever the mix (one file that hangs in every scenario, one that cannot even load). Each
unit runs in a fresh sandbox container of whichever lab takes it, and the in-lab runner resets
that lab before and after it: two submissions never share a container, a process or a lab at
the same time, and nothing one leaves behind reaches the next (lab.host.sandbox). ::

    with LabPool(repo, "socket-lab", jobs=4) as pool:
        cards = grade_all(pool, ["a.py", "b.py"], scenarios=None)

The cards are those :func:`lab.grading.card.grade` makes one file at a time: the same
results in the same scenario order. One difference, by design: once a file proved it cannot
even be loaded, its scenarios not yet started are marked "not run" (as serially), but those
another lab had already started keep their own (identical) verdict.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.grading import card as grading
from lab.grading.card import ReportCard, ScenarioResult
from lab.host.topology import Lab


@dataclasses.dataclass(frozen=True)
class Unit:
    """One submission (by its index in the class) in one scenario."""

    index: int
    scenario: str


def grade_all(pool: Any, paths: Sequence[str | Path], *, scenarios: Sequence[str] | None = None,
              watchdog: float | None = None, cost: Callable[[str], float | None] | None = None,
              progress: Callable[[int, ScenarioResult], None] | None = None,
              sandbox: grading.SandboxFactory | None = None) -> list[ReportCard]:
    """Every path's report card, graded on ``pool`` (a :class:`lab.host.pool.LabPool`).

    ``cost(scenario)`` is a scenario's expected seconds, so the longest start first;
    ``progress(index, result)`` is told as each unit finishes, from its worker's thread.
    """
    started = time.monotonic()
    chosen = grading.choose(scenarios)
    grading.check_watchdog(watchdog)
    by_name = {s.name: s for s in chosen}
    prepared = [grading.prepare(path, started=started) for path in paths]
    cards = [card for card, _ in prepared]
    results: dict[Unit, ScenarioResult] = {}
    unloadable: dict[int, ScenarioResult] = {}      # a file's first "cannot even load" result
    lock = threading.Lock()
    units = [Unit(i, s.name) for i, (card, _) in enumerate(prepared) if card.valid for s in chosen]

    def work(lab: Lab, unit: Unit) -> ScenarioResult:
        card, info = prepared[unit.index]
        with lock:
            because = unloadable.get(unit.index)
        if because is not None:
            return grading.not_run(because, by_name[unit.scenario])
        result = grading.grade_in(lab, card, info, by_name[unit.scenario], watchdog=watchdog, sandbox=sandbox)
        with lock:
            if grading.cannot_load(result):
                unloadable.setdefault(unit.index, result)
            results[unit] = result
        return result

    spent = [0.0] * len(cards)    # lab seconds each submission used (its card's elapsed_s)

    def done(unit: Unit, result: ScenarioResult, seconds: float) -> None:
        with lock:
            spent[unit.index] += seconds
        if progress is not None:
            progress(unit.index, result)

    unit_cost = (lambda unit: cost(unit.scenario)) if cost is not None else None
    finished = pool.map(units, work, cost=unit_cost, done=done)
    for unit, result in finished.items():
        cards[unit.index].results.append(result)
    order = {s.name: k for k, s in enumerate(chosen)}
    for i, card in enumerate(cards):
        card.results.sort(key=lambda r: order[r.scenario])
        if card.valid:
            card.elapsed_s = spent[i]
    return cards


__all__ = ["grade_all", "Unit"]
