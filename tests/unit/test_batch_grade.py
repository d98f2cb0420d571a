"""lab.grading.batch: a class graded on a pool of labs, one submission in one scenario at a time per lab.

The labs are tests.unit.test_grade's RecordingLab (it answers the runner like the lab would),
with a project name and a bring-up, inside a real lab.host.pool.LabPool.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lab.grading import batch
from lab.grading import card as grading
from lab.grading import verdicts as gv
from lab.host.pool import LabPool
from tests.unit.test_grade import EXAMPLES, FakeSandbox, RecordingLab, outcome


class PoolLab(RecordingLab):
    """A RecordingLab that is also a pool's lab; it notes which sandboxes were open in it at once."""

    def __init__(self, project: str, outcomes: dict[str, Any], lock: threading.Lock) -> None:
        super().__init__(outcomes)
        self.project, self.lock, self.open, self.most_open = project, lock, 0, 0

    def status(self) -> list[dict[str, object]]:
        return []

    def up(self) -> None:
        pass

    def down(self) -> None:
        pass

    def sandbox(self, lab: Any, info: Any) -> "CountedSandbox":
        return CountedSandbox(self, info)


class CountedSandbox(FakeSandbox):
    def __enter__(self) -> "CountedSandbox":
        lab: PoolLab = self.lab  # type: ignore[assignment]
        with lab.lock:
            lab.open += 1
            lab.most_open = max(lab.most_open, lab.open)
        return super().__enter__()  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        lab: PoolLab = self.lab  # type: ignore[assignment]
        with lab.lock:
            lab.open -= 1
        super().__exit__(*exc)


def make_pool(jobs: int, outcomes: dict[str, Any]) -> tuple[LabPool, dict[str, PoolLab]]:
    lock = threading.Lock()
    labs: dict[str, PoolLab] = {}

    def make(name: str) -> PoolLab:
        labs[name] = PoolLab(name, outcomes, lock)
        return labs[name]

    return LabPool(Path("."), "lab", jobs, make_lab=make), labs  # type: ignore[arg-type]


def sandbox_for(labs: dict[str, PoolLab]):  # type: ignore[no-untyped-def]
    # grade_in gets the lab that took the unit; its own sandbox factory records the sandbox there.
    return lambda lab, info: lab.sandbox(lab, info)


SCENARIOS = ["clean-close", "frozen-process", "refused"]


def test_every_file_gets_the_card_it_would_get_alone() -> None:
    outcomes = {"frozen-process": outcome("blocked")}
    paths = [EXAMPLES / "careful.py", EXAMPLES / "howto_fixed.py", EXAMPLES / "syntax_error.py"]
    pool, labs = make_pool(3, outcomes)
    with pool:
        cards = batch.grade_all(pool, paths, scenarios=SCENARIOS, sandbox=sandbox_for(labs))
    alone = [grading.grade(RecordingLab(outcomes), path, scenarios=SCENARIOS,  # type: ignore[arg-type]
                           sandbox=lambda lab, info: FakeSandbox(lab, info)) for path in paths]
    assert [c.submission for c in cards] == [str(p) for p in paths]
    for got, want in zip(cards, alone):
        assert got.verdict == want.verdict and got.valid == want.valid and got.reason == want.reason
        assert [(r.scenario, r.verdict, r.reason) for r in got.results] == \
            [(r.scenario, r.verdict, r.reason) for r in want.results]
    assert cards[2].verdict == "invalid" and cards[2].results == []


def test_each_unit_runs_once_with_one_sandbox_at_a_time_in_each_lab() -> None:
    paths = [EXAMPLES / "careful.py", EXAMPLES / "howto_fixed.py", EXAMPLES / "single_recv.py"]
    pool, labs = make_pool(3, {})
    with pool:
        batch.grade_all(pool, paths, scenarios=SCENARIOS, sandbox=sandbox_for(labs))
    runs = {name: [argv for argv, _ in lab.calls if argv[:3] == ["python3", "-m", "lab.inlab.runner"]]
            for name, lab in labs.items()}
    assert sum(len(r) for r in runs.values()) == len(paths) * len(SCENARIOS)   # each unit once
    assert max(lab.most_open for lab in labs.values()) == 1                    # never two submissions in one lab
    # Every run is in a sandbox made for it, removed before that lab's next run.
    for lab in labs.values():
        kinds = [argv[1] if argv[0] == "sandbox" else "run" for argv, _ in lab.calls]
        assert kinds == ["start", "run", "remove"] * (len(kinds) // 3)


def test_a_file_that_cannot_load_is_not_run_in_the_scenarios_not_yet_started() -> None:
    failed = outcome("blocked", error="ImportTimeout", message="did not finish within 5 s", facts={"phase": "import"})
    outcomes = {name: failed for name in SCENARIOS}
    pool, labs = make_pool(1, outcomes)   # one lab: the first unit's verdict is known before the next starts
    with pool:
        [card] = batch.grade_all(pool, [EXAMPLES / "hangs_at_import.py"], scenarios=SCENARIOS,
                                 sandbox=sandbox_for(labs))
    runs = [argv for argv, _ in labs["lab"].calls if argv[:3] == ["python3", "-m", "lab.inlab.runner"]]
    assert len(runs) == 1
    assert [r.verdict for r in card.results] == [gv.HUNG] * 3
    assert [r.reason.startswith("not run: ") for r in card.results] == [False, True, True]


def test_progress_is_told_each_unit_and_the_card_keeps_the_scenario_order() -> None:
    told: list[tuple[int, str]] = []
    pool, labs = make_pool(2, {})
    with pool:
        [a, b] = batch.grade_all(pool, [EXAMPLES / "careful.py", EXAMPLES / "single_recv.py"],
                                 scenarios=SCENARIOS, sandbox=sandbox_for(labs),
                                 cost={"refused": 9.0, "clean-close": 1.0}.get,
                                 progress=lambda i, r: told.append((i, r.scenario)))
    assert sorted(told) == sorted((i, s) for i in (0, 1) for s in SCENARIOS)
    assert [r.scenario for r in a.results] == SCENARIOS == [r.scenario for r in b.results]
    assert a.elapsed_s >= 0 and b.elapsed_s >= 0
