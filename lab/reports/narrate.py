"""Classroom narration for ``lab demo``: a scenario told in plain words, step by step.

Pure functions, no lab and no terminal, so the story is tested without Docker::

    steps = narrate(scenario.get("frozen-process").summary(), watchdog=12.0)
    for step in steps:
        print(step.title); print(step.text)
    ...                                         # run the scenario
    print(remember(report))                     # REMEMBER plus one sentence per verdict

The words come from the scenario file itself (WIRE, INJECTION, EXPECT and its
bounds, REMEMBER): a new scenario narrates itself. They are said to a class, so the
lab's own names for its parts ("the server-agent", "the threaded server") are put in
plain words (:func:`plain_words`). While the run goes on, :class:`LiveEvents` turns the
runner's events into lines, a run of identical ones told once with its count.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lab.reports.document import expectation_line
from lab.inlab.runreport import RunReport
from lab.inlab.timeline import since_fault

__all__ = ["Step", "narrate", "verdict_sentence", "remember", "plain_words", "LiveEvents", "JARGON"]

_PATHS = {"direct": "The client talks straight to the server (no proxy in between).",
          "proxied": "The client talks to Toxiproxy, which relays every byte to the server."}
_WHO = {"robust": "the robust client (deadlines, heartbeats, typed errors)",
        "naive": "the naive client (written like the HOWTO's demonstration code: blocking, no deadlines)"}


@dataclasses.dataclass(frozen=True)
class Step:
    title: str
    text: str


# The lab's names for its own parts, as a class hears them. Longest first: "threaded selectors
# server" before "threaded server"; each with a capital for the start of a sentence.
JARGON = (
    ("threaded selectors server", "server that serves every client from one thread (select())"),
    ("the server-agent", "the lab's helper beside the server"),
    ("the router-agent", "the lab's helper on the router"),
    ("the client-agent", "the lab's helper beside the client"),
    ("server-agent", "lab's helper beside the server"),
    ("router-agent", "lab's helper on the router"),
    ("client-agent", "lab's helper beside the client"),
    ("threaded server process", "server process (one thread per client)"),
    ("threaded server", "server (one thread per client)"),
    ("forking server", "server (one process per client)"),
    ("threaded proxy", "proxy"),
)


def plain_words(text: Any) -> str:
    """``text`` on one line, with the lab's jargon (:data:`JARGON`) said plainly."""
    said = " ".join(str(text).split())
    for jargon, plain in JARGON:
        said = said.replace(jargon, plain).replace(jargon[0].upper() + jargon[1:], plain[0].upper() + plain[1:])
    return said


def _plain(text: Any) -> str:
    return plain_words(text)


def narrate(summary: dict[str, Any], *, watchdog: float | None = None) -> list[Step]:
    """The steps told before the run, from a scenario summary (``Scenario.summary()`` or a report's)."""
    impls = list(summary.get("expect", {}))
    who = " and ".join(_WHO.get(i, i) for i in impls)
    steps = [
        Step(f"1. {summary.get('title', summary.get('name', '?'))}",
             f"This scenario illustrates the HOWTO section \"{summary.get('howto', '?')}\". "
             + _PATHS.get(str(summary.get("path")), "") + f" Running side by side: {who}."),
        Step("2. What the lab is about to do", _plain(summary.get("injection", ""))),
        Step("3. What the kernel and the wire will do", _plain(summary.get("wire", ""))
             + (f"\nIn the packets, look for: {_plain(summary['look_for'])}" if summary.get("look_for") else "")),
    ]
    expectations = [f"- {impl} {_plain(expectation_line(oracle, watchdog))}."
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


class LiveEvents:
    """The runner's events as lines for the class, while the run goes on.

    The first of a run of identical events (one actor, one ``what``: 300 intact echoes, five
    PINGs) is told at once; the rest are counted, and told as one line when that actor does
    something else, the lab acts, or the run ends (:meth:`finish`)::

        live = LiveEvents()
        for event in events:
            for line in live.feed(event):
                print(line)
        for line in live.finish():
            print(line)
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[str, int, float]] = {}   # actor → (what, more of it, last t)

    @staticmethod
    def line(event: dict[str, Any]) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("t", "actor", "what", "seq")
                          and v is not None)
        return (f"  +{float(event.get('t', 0.0)):7.3f} s  {event.get('actor', '?'):<16} {event.get('what', '')}"
                + (f" ({plain_words(facts)})" if facts else ""))

    def _close(self, actor: str) -> list[str]:
        what, more, last = self._open.pop(actor, ("", 0, 0.0))
        return [f"  {'':>10}  {actor:<16} … and {more} more {what}, the last at +{last:.3f} s"] if more else []

    def feed(self, event: dict[str, Any]) -> list[str]:
        actor, what, t = str(event.get("actor", "?")), str(event.get("what", "")), float(event.get("t", 0.0))
        if actor in self._open and self._open[actor][0] == what:
            _, more, _ = self._open[actor]
            self._open[actor] = (what, more + 1, t)
            return []
        # The lab's and the server's events close every client's run: nothing is told out of order.
        closing = [actor] if actor.startswith("client") else list(self._open)
        lines = [line for a in closing for line in self._close(a)]
        self._open[actor] = (what, 0, t)
        return lines + [self.line(event)]

    def finish(self) -> list[str]:
        return [line for actor in list(self._open) for line in self._close(actor)]
