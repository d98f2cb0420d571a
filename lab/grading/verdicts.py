"""From one outcome to one verdict, measured against what careful code does in that scenario.

The yardstick is each scenario's *robust* oracle (``EXPECT["robust"]``): what the
lab's careful implementation is required to do. Nothing else is needed, so the
same rules grade a submitted file, a built-in, or an outcome made up in a test::

    v = decide(scenario.expect["robust"], outcome, fault_at=0.8, watchdog=10.0)
    v.verdict, v.reason          # "reported correctly", "raised TimeoutError 2.01 s after the fault; ..."

The rules, in order (the first that applies wins):

1. the file could not be loaded: never finished importing → *hung*; raised or
   broke the contract → *crashed*;
2. any reply differed from what was sent → *returned corrupt data* (silently wrong
   data is the worst outcome, whatever happened next);
3. still inside a call at the watchdog → *hung*;
4. raised an exception:
   - a programming error (AttributeError, TypeError, ...) → *crashed*;
   - careful code completes here → *crashed*;
   - fewer intact replies than careful code got before the failure, or before the
     fault → *crashed* (it broke before there was anything to report);
   - within careful code's bound plus 0.5 s → *reported correctly*, later → *reported late*;
5. completed, every reply intact: *survived* where careful code completes; where
   careful code must report an error, *missed the failure*.

:func:`predicted` applies the same rules to an outcome built from another
oracle (``EXPECT["naive"]``): the verdict the scenario itself predicts, which the
tests compare with what the lab measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lab.inlab.scenario import Expect, Scenario

SURVIVED = "survived"
REPORTED = "reported correctly"
LATE = "reported late"
HUNG = "hung"
CORRUPT = "returned corrupt data"
CRASHED = "crashed"
MISSED = "missed the failure"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SURVIVED, REPORTED, LATE, MISSED, HUNG, CORRUPT, CRASHED, INCONCLUSIVE)
GOOD = frozenset({SURVIVED, REPORTED})
SLACK_S = 0.5
DEFAULT_WATCHDOG_S = 10.0   # lab.inlab.runner.DEFAULT_WATCHDOG, without importing the in-lab runner

# Raised by a bug in the code itself, never a way to report that the network failed.
PROGRAMMING_ERRORS = frozenset({
    "AttributeError", "NameError", "UnboundLocalError", "TypeError", "ImportError", "ModuleNotFoundError",
    "SyntaxError", "IndentationError", "NotImplementedError", "RecursionError", "AssertionError", "KeyError",
    "IndexError", "ZeroDivisionError", "SystemExit",
})


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    took_s: float | None = None     # from the fault to the error (or completion)
    bound_s: float | None = None    # careful code's bound plus the slack, when it must report


def careful(robust: Expect) -> str:
    """What careful code does here, in words (the yardstick every reason quotes)."""
    if robust.status == "completed":
        return "careful code completes every exchange intact"
    if robust.status == "error":
        bound = f" within {robust.within:g} s" if robust.within is not None else ""
        return f"careful code reports {' or '.join(robust.errors)}{bound}"
    return f"careful code is expected to be {robust.status}"


def decide(robust: Expect, outcome: Mapping[str, Any], *, fault_at: float | None, watchdog: float,
           reference_exchanges: int | None = None) -> Verdict:
    """The verdict for one outcome (a report's outcome dict) against the robust oracle."""
    status = outcome.get("status")
    error = outcome.get("error")
    message = outcome.get("message") or ""
    facts = outcome.get("facts") or {}
    corrupt = outcome.get("corrupt") or 0
    intact = outcome.get("exchanges_ok") or 0
    ended = outcome.get("ended_at")
    took = round(ended - (fault_at or 0.0), 4) if ended is not None else None
    yardstick = careful(robust)
    said = f"{error}: {message}" if message else f"{error}"

    if facts.get("phase") == "import":
        if status == "blocked":
            return Verdict(HUNG, f"never finished importing: {message}")
        return Verdict(CRASHED, f"could not be loaded: {message or error}")
    if corrupt:
        return Verdict(CORRUPT, f"{corrupt} replies differed from what was sent (and {intact} were intact); "
                                f"{yardstick}", took)
    if status == "blocked":
        # The runner says which: at the watchdog, or when a run was aborted around a stuck call.
        where = message or f"still inside a call at the watchdog ({watchdog:g} s after the fault)"
        return Verdict(HUNG, f"{where}; {yardstick}")
    if robust.status not in ("completed", "error"):
        return Verdict(INCONCLUSIVE, f"no yardstick: {yardstick}")
    if status == "error":
        if error in PROGRAMMING_ERRORS:
            return Verdict(CRASHED, f"raised {said} (a bug in the code, not a report of the failure)", took)
        if robust.status == "completed":
            return Verdict(CRASHED, f"raised {said}, where {yardstick}", took)
        if reference_exchanges is not None and intact < reference_exchanges:
            return Verdict(CRASHED, f"raised {said} after {intact} intact replies; careful code got "
                                    f"{reference_exchanges} before the failure", took)
        if took is None:
            return Verdict(INCONCLUSIVE, f"raised {said}, but no end time was recorded")
        if took < 0:
            return Verdict(CRASHED, f"raised {said} {-took:.2f} s before the fault", took)
        bound = (robust.within if robust.within is not None else watchdog) + SLACK_S
        timing = f"{took:.2f} s after the fault; bound {bound:g} s"
        if took <= bound:
            return Verdict(REPORTED, f"raised {said}, {timing}", took, bound)
        return Verdict(LATE, f"raised {said}, {timing} ({yardstick})", took, bound)
    if status == "completed":
        if robust.status == "completed":
            return Verdict(SURVIVED, f"completed, {intact} replies intact", took)
        return Verdict(MISSED, f"completed without raising ({intact} replies intact), where {yardstick}", took)
    return Verdict(INCONCLUSIVE, f"unknown outcome status {status!r}")


def predicted(scenario: Scenario, impl: str) -> Verdict:
    """The verdict the scenario predicts for ``impl``: its own oracle, played through :func:`decide`.

    The oracle becomes the outcome it describes: its status, its first accepted
    error, ended exactly at its bound (or half-way to the watchdog when it has
    none), a corrupt reply when it expects one.
    """
    expect = scenario.expect[impl]
    watchdog = scenario.watchdog or DEFAULT_WATCHDOG_S
    ended = None
    if expect.status != "blocked":
        ended = expect.within if expect.within is not None else watchdog / 2
    outcome = {"status": expect.status, "error": expect.errors[0] if expect.errors else None, "message": "",
               "facts": {}, "ended_at": ended, "exchanges_ok": 0, "corrupt": 1 if expect.corrupt else 0}
    return decide(scenario.expect["robust"], outcome, fault_at=0.0, watchdog=watchdog)


__all__ = ["SURVIVED", "REPORTED", "LATE", "HUNG", "CORRUPT", "CRASHED", "MISSED", "INCONCLUSIVE", "VERDICTS",
           "GOOD", "SLACK_S", "PROGRAMMING_ERRORS", "Verdict", "careful", "decide", "predicted"]
