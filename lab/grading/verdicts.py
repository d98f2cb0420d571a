"""From one outcome to one verdict, measured against what careful code does in that scenario.

The yardstick is each scenario's *robust* oracle (``EXPECT["robust"]``): what the
lab's careful implementation is required to do. Nothing else is needed, so the
same rules grade a submitted file, a built-in, or an outcome made up in a test::

    v = decide(scenario.expect["robust"], outcome, fault_at=0.8, watchdog=10.0)
    v.verdict, v.reason          # "reported correctly", "raised TimeoutError 2.01 s after the fault; ..."

Submitted code runs apart from the judge, so what it *says* happened is checked
against what the server really received: the runner puts those facts in
``outcome["facts"]`` (``fabricated``, ``duplicated``, ``lost``, ``rejected``,
``bytes_sent``; see :func:`decide`).

The rules, in order (the first that applies wins):

1. the file could not be loaded: never finished importing → *hung*; raised or
   broke the contract → *crashed*;
2. it returned replies the server never sent (made up by the code) → *returned
   corrupt data*;
3. any reply differed from what was sent → *returned corrupt data* (silently wrong
   data is the worst outcome, whatever happened next);
4. the server received a message more than once → *delivered twice*;
5. a send it reported done never reached the server, and it raised nothing → *lost data*;
6. the server rejected what it sent → *protocol mismatch*, quoting the bytes and the
   server's answer (this explains the crash the code reports afterwards);
7. still inside a call at the watchdog → *hung*;
8. raised an exception:
   - a programming error (AttributeError, TypeError, ..., and DriverProtocolError or
     DriverExited: the program broke the driver protocol or exited) → *crashed*;
   - any other error where careful code completes → *reported, did not recover*
     (a correct report of the failure, but careful code reconnects and completes);
   - fewer intact replies than careful code got before the failure, or before the
     fault → *crashed* (it broke before there was anything to report);
   - within careful code's bound plus 0.5 s → *reported correctly*, later → *reported late*;
9. completed, every reply intact: *survived* where careful code completes; where
   careful code must report an error, *missed the failure*;
10. a *survived*, *reported correctly* or *missed the failure* when the workload did
    not move the bytes the fault needs (``reach_bytes``) → *inconclusive*: the
    fault was never reached, so handling it (or missing it) proves nothing.

:data:`VERDICTS` runs from best to worst as the card counts them. *Reported, did
not recover* is not good, but better than *crashed*, and ranks below *reported
late* (whose report was right, only slow) because careful code does more there:
it completes. *Inconclusive* comes last: it is no grade at all.

:func:`predicted` applies the same rules to an outcome built from another
oracle (``EXPECT["naive"]``): the verdict the scenario itself predicts, which the
tests compare with what the lab measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lab.inlab.scenario import Expect, Scenario
from lab.inlab.timeline import bound_start
from lab.sockets.framing import FrameType

SURVIVED = "survived"
REPORTED = "reported correctly"
LATE = "reported late"
HUNG = "hung"
CORRUPT = "returned corrupt data"
CRASHED = "crashed"
MISSED = "missed the failure"
INCONCLUSIVE = "inconclusive"
NO_RECOVERY = "reported, did not recover"
DUPLICATED = "delivered twice"
LOST = "lost data"
MISMATCH = "protocol mismatch"
VERDICTS = (SURVIVED, REPORTED, LATE, NO_RECOVERY, MISSED, HUNG, MISMATCH, LOST, DUPLICATED, CORRUPT, CRASHED,
            INCONCLUSIVE)
GOOD = frozenset({SURVIVED, REPORTED})
SLACK_S = 0.5
DEFAULT_WATCHDOG_S = 10.0   # lab.inlab.runner.DEFAULT_WATCHDOG, without importing the in-lab runner

# Raised by a bug in the code itself, never a way to report that the network failed.
PROGRAMMING_ERRORS = frozenset({
    "AttributeError", "NameError", "UnboundLocalError", "TypeError", "ImportError", "ModuleNotFoundError",
    "SyntaxError", "IndentationError", "NotImplementedError", "RecursionError", "AssertionError", "KeyError",
    "IndexError", "ZeroDivisionError", "SystemExit",
    # The sandboxed program broke the driver protocol, or exited: a bug in it, not a report.
    "DriverProtocolError", "DriverExited",
})
EXPECTED_SHOWN = 5   # bytes of the frame the lab handed over that a mismatch quotes: its header
GOT_SHOWN = 8        # bytes of what the server got: a header and the start of what follows (a doubled prefix)


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
           reference_exchanges: int | None = None, reach_bytes: int | None = None) -> Verdict:
    """The verdict for one outcome (a report's outcome dict) against the robust oracle.

    ``outcome["facts"]`` may carry what the server's record says (all optional):
    ``fabricated`` (replies returned as intact whose message the server never
    received), ``duplicated`` (messages the server received more than once),
    ``lost`` (sends reported done that the server never received, after a run
    without an error), ``rejected`` (``{"head", "expected_head", "error", "answer"}``:
    the server refused what the code sent) and ``bytes_sent`` (frame bytes the code
    accepted to send). ``reach_bytes``: the bytes a workload must move to reach the
    scenario's fault (None: no such need). ``fault_at``: when the fault was in place
    (timeline.fault_in_place); the time taken counts from timeline.bound_start.
    """
    v = _decide(robust, outcome, fault_at=fault_at, watchdog=watchdog, reference_exchanges=reference_exchanges)
    sent = _count((outcome.get("facts") or {}).get("bytes_sent"))
    # Only a verdict about how the fault was handled needs the fault reached; a crash or a hang stands.
    short = reach_bytes is not None and sent is not None and sent < reach_bytes
    if short and v.verdict in (SURVIVED, REPORTED, MISSED):
        return Verdict(INCONCLUSIVE, f"the workload did not reach the fault: the code moved {sent} of the "
                                     f"{reach_bytes} bytes the fault needs", v.took_s)
    return v


def _decide(robust: Expect, outcome: Mapping[str, Any], *, fault_at: float | None, watchdog: float,
            reference_exchanges: int | None) -> Verdict:
    status = outcome.get("status")
    error = outcome.get("error")
    message = outcome.get("message") or ""
    facts = outcome.get("facts") or {}
    corrupt = outcome.get("corrupt") or 0
    intact = outcome.get("exchanges_ok") or 0
    ended = outcome.get("ended_at")
    took = round(ended - bound_start(fault_at, outcome.get("released_at")), 4) if ended is not None else None
    yardstick = careful(robust)
    said = f"{error}: {message}" if message else f"{error}"

    if facts.get("phase") == "import":
        if status == "blocked":
            return Verdict(HUNG, f"never finished importing: {message}")
        return Verdict(CRASHED, f"could not be loaded: {message or error}")
    fabricated, duplicated, lost = (_count(facts.get(k)) or 0 for k in ("fabricated", "duplicated", "lost"))
    if fabricated > 0:
        return Verdict(CORRUPT, f"{_n(fabricated, 'reply', 'replies')} the server never sent (made up by the code)",
                       took)
    if corrupt:
        return Verdict(CORRUPT, f"{corrupt} replies differed from what was sent (and {intact} were intact); "
                                f"{yardstick}", took)
    if duplicated > 0:
        return Verdict(DUPLICATED, f"the server received {_n(duplicated, 'message', 'messages')} more than once "
                                   f"(exactly-once broken)", took)
    if lost > 0:
        return Verdict(LOST, f"{_n(lost, 'message', 'messages')} the code reported sent never reached the server, "
                             f"and it raised no error (lost silently)", took)
    if isinstance(facts.get("rejected"), Mapping):
        then = f" (the code then raised {said})" if status == "error" and error else ""
        return Verdict(MISMATCH, f"{mismatch(facts['rejected'])}{then}", took)
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
            return Verdict(NO_RECOVERY, f"raised {said} — a correct report, but careful code reconnects and "
                                        f"completes", took)
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


def mismatch(rejected: Mapping[str, Any]) -> str:
    """The server's rejection in words: what it expected, the bytes it got, its error and its answer."""
    expected = _hex_bytes(rejected.get("expected_head"))
    got = _hex_bytes(rejected.get("head"))
    parts = "the server rejected what was sent: "
    if expected:
        parts += f"it expected {_frame_name(expected)} (first bytes {_spaced(expected, EXPECTED_SHOWN)}) and got "
    else:
        parts += "it got "
    parts += _spaced(got, GOT_SHOWN) if got else "nothing"
    if rejected.get("error"):
        parts += f": {rejected['error']}"
    if rejected.get("answer"):
        parts += f"; it {rejected['answer']}"
    return parts


def _count(value: Any) -> int | None:
    """A count from the facts, or None when it is absent or not a count (a bool is no count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _hex_bytes(value: Any) -> bytes:
    try:
        return bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        return b""


def _spaced(data: bytes, shown: int) -> str:
    text = " ".join(f"{b:02x}" for b in data[:shown])
    return f"{text} ..." if len(data) > shown else text


def _frame_name(head: bytes) -> str:
    """'a DATA frame' from a frame's first bytes (its type is the fifth), 'a frame' when unknown."""
    try:
        return f"a {FrameType(head[4]).name} frame"
    except (IndexError, ValueError):
        return "a frame"


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


__all__ = ["SURVIVED", "REPORTED", "LATE", "HUNG", "CORRUPT", "CRASHED", "MISSED", "INCONCLUSIVE", "NO_RECOVERY",
           "DUPLICATED", "LOST", "MISMATCH", "VERDICTS", "GOOD", "SLACK_S", "PROGRAMMING_ERRORS", "Verdict", "careful",
           "decide", "mismatch", "predicted"]
