"""Where a time bound starts: the fault in place and the implementation let past it, never the request.

Injecting a fault is the lab's own time, and it grows with the machine's load (refused's was 0.7 s
under four parallel labs, against a 0.5 s bound). These tests pin the rule in the three places
that apply it: the in-lab oracle (scenario.judge), the runner's gate, and the grader (verdicts).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from lab.grading import verdicts as gv
from lab.inlab import scenario, timeline
from lab.inlab.runner import Context, report
from lab.inlab.scenario import Expect, Outcome

REFUSED = Expect("error", ("ConnectionRefusedError",), within=0.5)


@pytest.mark.parametrize(("in_place", "released", "start"), [
    (2.0, None, 2.0),          # not gated: the fault in place
    (None, 3.0, 3.0),          # no fault recorded: the release
    (2.0, 2.7, 2.7),           # released late: from the release
    (2.0, 1.5, 2.0),           # released before the fault acted (an earlier group): from the fault
    (None, None, 0.0),
    (True, "3", 0.0),          # not numbers: ignored
])
def test_the_bound_starts_at_the_later_of_the_fault_in_place_and_the_release(
        in_place: Any, released: Any, start: float) -> None:
    assert timeline.bound_start(in_place, released) == start


def _bound(outcome: Outcome, fault_at: float) -> scenario.Check:
    return next(c for c in scenario.judge(REFUSED, outcome, fault_at=fault_at) if c.name == "time bound")


def test_the_oracle_counts_from_the_release_not_from_the_fault_in_place() -> None:
    # In place at 2.0; the lab woke this worker at 2.7 (a busy machine); it failed 0.5 s later.
    on_time = Outcome("robust", status="error", error="ConnectionRefusedError", ended_at=3.2, released_at=2.7)
    check = _bound(on_time, 2.0)
    assert (check.ok, check.detail) == (True, "0.500 s after the fault; bound 0.5 s")
    late = Outcome("robust", status="error", error="ConnectionRefusedError", ended_at=3.201, released_at=2.7)
    assert _bound(late, 2.0).ok is False
    # Not gated: from the fault in place, exactly as before.
    ungated = Outcome("robust", status="error", error="ConnectionRefusedError", ended_at=2.6)
    assert (_bound(ungated, 2.0).ok, _bound(ungated, 2.0).detail) == (False, "0.600 s after the fault; bound 0.5 s")


def test_the_grader_counts_from_the_same_start() -> None:
    outcome = {"status": "error", "error": "ConnectionRefusedError", "message": "refused", "facts": {},
               "ended_at": 3.2, "released_at": 2.7, "exchanges_ok": 0, "corrupt": 0}
    v = gv.decide(REFUSED, outcome, fault_at=2.0, watchdog=10.0)
    assert (v.verdict, v.took_s) == (gv.REPORTED, 0.5)
    slow = dict(outcome, ended_at=2.7 + 0.5 + gv.SLACK_S + 0.01)
    assert gv.decide(REFUSED, slow, fault_at=2.0, watchdog=10.0).verdict == gv.LATE
    # A report written before outcomes carried released_at: from the fault in place.
    legacy = {k: v for k, v in outcome.items() if k != "released_at"}
    assert gv.decide(REFUSED, legacy, fault_at=2.0, watchdog=10.0).took_s == 1.2


class _Refused(Exception):
    pass


def test_a_slow_injection_is_not_counted_against_the_implementation() -> None:
    """The runner, whole: a fault that takes the lab 0.7 s to put in place, a worker that fails 0.1 s
    after its release. The verdict passes refused's 0.5 s bound, and the note says what was left out."""
    refused = scenario.get("refused")
    ctx = Context(dataclasses.replace(refused, expect={"robust": Expect("error", ("_Refused",), within=0.5)}),
                  ["robust"])

    def slow_fault() -> None:
        ctx.fault_at = ctx.mark("lab", "fault: slow")
        time.sleep(0.7)                           # the lab's own time: stopping a server, say
        ctx.mark("lab", "fault in place: slow")

    def worker(ctx: Context, subject: Any, outcome: Outcome) -> None:
        ctx.ready()
        time.sleep(0.1)                           # the implementation's own time
        raise _Refused("refused")

    ctx.side_by_side(worker, fault=slow_fault)
    rep = report(ctx, None)
    outcome = ctx.outcomes["robust"]
    in_place = timeline.fault_in_place(rep)
    assert in_place is not None and ctx.fault_at is not None
    assert in_place - ctx.fault_at >= 0.7
    assert outcome.released_at is not None and outcome.released_at >= in_place
    check = next(c for c in rep["verdicts"]["robust"]["checks"] if c["name"] == "time bound")
    took = outcome.ended_at - outcome.released_at
    assert check["ok"] is True and 0.1 <= took < 0.5, check
    assert rep["verdicts"]["robust"]["outcome"]["released_at"] == outcome.released_at
    note = timeline.time_note(rep, "robust")
    assert note.startswith(f"counted from +{outcome.released_at:.3f} s, once the fault was in place and robust "
                           f"was let past it; the lab's own ")
    assert float(note.split("the lab's own ")[1].split(" s")[0]) >= 0.7


class _SlowSandbox:
    """A subject whose prepare() is a sandbox starting its program: 0.4 s of the lab's own time."""

    impl = "robust"

    def __init__(self) -> None:
        self.prepared_at: float | None = None

    def prepare(self) -> None:
        time.sleep(0.4)
        self.prepared_at = time.monotonic()

    def socket_stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def _ungated(worker: Any) -> tuple[Context, Outcome, _SlowSandbox, dict[str, Any]]:
    refused = scenario.get("refused")
    ctx = Context(dataclasses.replace(refused, expect={"robust": Expect("error", ("_Refused",), within=0.5)}),
                  ["robust"])
    sandbox = _SlowSandbox()
    ctx.subject = lambda impl, server, config=None: sandbox  # type: ignore[method-assign]
    ctx.fault_at = ctx.mark("lab", "fault: refuse")          # in place before anyone connects, as refused does
    ctx.mark("lab", "fault in place: refuse")
    ctx.side_by_side(worker)
    return ctx, ctx.outcomes["robust"], sandbox, report(ctx, None)


def test_without_a_fault_point_the_bound_starts_once_the_sandbox_is_up() -> None:
    def worker(ctx: Context, subject: Any, outcome: Outcome) -> None:
        time.sleep(0.1)
        raise _Refused("refused")

    ctx, outcome, sandbox, rep = _ungated(worker)
    assert sandbox.prepared_at is not None and outcome.released_at is not None
    assert outcome.released_at - ctx.fault_at >= 0.4          # after the 0.4 s start-up
    check = next(c for c in rep["verdicts"]["robust"]["checks"] if c["name"] == "time bound")
    assert check["ok"] is True and 0.1 <= outcome.ended_at - outcome.released_at < 0.5, check


def test_a_workers_own_ready_moves_the_start_later_and_only_its_first_counts() -> None:
    stamps: list[float] = []

    def worker(ctx: Context, subject: Any, outcome: Outcome) -> None:
        time.sleep(0.3)                                      # two round trips, say (clean-close)
        ctx.ready()
        stamps.append(outcome.released_at)
        time.sleep(0.1)
        ctx.ready()                                          # a second fault point does not move it
        stamps.append(outcome.released_at)
        raise _Refused("refused")

    ctx, outcome, _sandbox, _rep = _ungated(worker)
    assert stamps[0] == stamps[1] == outcome.released_at
    assert outcome.released_at - ctx.fault_at >= 0.7         # 0.4 s start-up + 0.3 s before ready()
