"""A run's timeline read for people: runs of identical events folded, times counted from the fault.

Every rendering of a report (the runner's plain text, the terminal views, the Markdown and HTML
documents, the SVG) shows the timeline through :func:`fold`, so 299 intact echoes are one row::

    echo intact ×299 (seq 2–300, +0.510 s…+3.200 s)

and counts "since the fault" from :func:`fault_in_place`: the report's ``fault_at`` is marked
when the lab *asked* for the fault, and putting it in place (stopping servers, a round trip to an
agent) can take the lab itself a noticeable time that no implementation should be credited or
blamed for. A check without a detail is shown as :data:`NO_DETAIL`, never as an empty line.

Standard library only: the in-lab runner renders with it, and so do the host's lab.reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Run", "fold", "fault_in_place", "in_place_event", "since_fault", "bound_start", "fault_line",
           "plain_lines", "detail_of", "time_note", "NO_DETAIL"]

NO_DETAIL = "(no detail given)"
_OWN_KEYS = ("t", "actor", "what")
_IN_PLACE = "fault in place: "


@dataclasses.dataclass
class Run:
    """One row of a timeline: an event, or a run of identical events folded into one."""

    t: float
    actor: str
    what: str
    facts: dict[str, Any]        # the first event's facts
    count: int = 1
    until: float | None = None   # the last folded event's time
    last_seq: Any = None

    @property
    def first_seq(self) -> Any:
        return self.facts.get("seq")

    def label(self) -> str:
        """``what``, and for a folded run how many, which sequence numbers and over what time."""
        if self.count == 1:
            return self.what
        span = f"+{self.t:.3f} s…+{self.until if self.until is not None else self.t:.3f} s"
        if self.first_seq is not None:
            span = f"seq {self.first_seq}–{self.last_seq}, {span}"
        return f"{self.what} ×{self.count} ({span})"

    def shown_facts(self) -> dict[str, Any]:
        """The facts to print beside the label: a folded run's sequence numbers are in the label."""
        return {k: v for k, v in self.facts.items() if v is not None and not (self.count > 1 and k == "seq")}


def _key(actor: str, what: str, facts: Mapping[str, Any]) -> tuple[str, str, str]:
    # Events are identical when only their time and sequence number differ.
    return actor, what, repr(sorted((k, repr(v)) for k, v in facts.items() if k != "seq"))


def fold(timeline: Sequence[Mapping[str, Any]]) -> list[Run]:
    """Timeline events as rows, consecutive identical events of one actor folded into one row.

    The clients run side by side, so one client's run stays open across the other clients'
    events (their echoes interleave); a different event of its own, or any event of the lab or
    the server (a fault, a restart), closes it. Nothing that happened between two folded events
    of one client is hidden behind the fold, and a fold never spans the fault.
    """
    rows: list[Run] = []
    open_runs: dict[tuple[str, str, str], Run] = {}
    for event in timeline:
        actor, what = str(event.get("actor", "?")), str(event.get("what", ""))
        facts = {k: v for k, v in event.items() if k not in _OWN_KEYS}
        t = float(event.get("t", 0.0))
        key = _key(actor, what, facts)
        run = open_runs.get(key)
        if run is not None:
            run.count += 1
            run.until = t
            run.last_seq = facts.get("seq")
            continue
        if _is_client(actor):
            open_runs = {k: r for k, r in open_runs.items() if _is_client(r.actor) and r.actor != actor}
        else:
            open_runs = {}
        run = Run(t, actor, what, facts, last_seq=facts.get("seq"))
        open_runs[key] = run
        rows.append(run)
    return rows


def _is_client(actor: str) -> bool:
    return actor.startswith("client")


def in_place_event(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first "fault in place: …" event: the moment ``facts["fault_wall"]`` was taken."""
    return next((e for e in report.get("timeline", []) if e.get("actor") == "lab"
                 and str(e.get("what", "")).startswith(_IN_PLACE)), None)


def fault_in_place(report: Mapping[str, Any]) -> float | None:
    """When the fault was in place, in the timeline's seconds; None when the run had no fault.

    ``fault_at`` marks the request ("fault: NAME"); the runner marks "fault in place: NAME" once
    the fault confirmed itself, and that is when it began to act. Where a fault or a scenario set
    ``fault_at`` itself (a host action done, clients connecting to a full queue), that moment was
    chosen as the fault's and is kept.
    """
    fault_at = report.get("fault_at")
    if isinstance(fault_at, bool) or not isinstance(fault_at, (int, float)):
        return None
    timeline = list(report.get("timeline", []))
    for i, event in enumerate(timeline):
        what = str(event.get("what", ""))
        if event.get("actor") == "lab" and event.get("t") == fault_at and what.startswith("fault: "):
            name = what[len("fault: "):]
            for later in timeline[i + 1:]:
                if later.get("actor") == "lab" and later.get("what") == _IN_PLACE + name:
                    return float(later["t"])
            break
    return float(fault_at)


def since_fault(report: Mapping[str, Any], t: Any) -> float | None:
    """Seconds from the fault being in place to ``t`` (a timeline time); None without a fault."""
    start = fault_in_place(report)
    if start is None or isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    return t - start


def bound_start(in_place: float | None, released_at: Any) -> float:
    """Where an implementation's time bound starts: the later of the fault being in place and the
    lab letting that implementation past its fault point (``Outcome.released_at``).

    Both are the lab's doing, never the code's: injecting a fault can take the lab a noticeable
    time that grows with the machine's load (0.7 s was seen for refused under four parallel
    labs), and a worker thread woken by the gate may wake late on a busy machine. Counting from
    either would blame the code under test for the lab's own time. Neither moment can be moved
    by the code under test: the runner takes both on its own clock, outside any subject.
    """
    starts = [float(t) for t in (in_place, released_at)
              if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return max(starts) if starts else 0.0


def fault_line(report: Mapping[str, Any]) -> str | None:
    """One line on when the fault was asked for and when it was in place; None without a fault."""
    fault_at, in_place = report.get("fault_at"), fault_in_place(report)
    if in_place is None or not isinstance(fault_at, (int, float)):
        return None
    if in_place - fault_at < 0.0005:
        return f"fault in place at +{in_place:.3f} s; times since the fault count from then"
    return (f"fault asked for at +{fault_at:.3f} s, in place at +{in_place:.3f} s (the lab's own "
            f"{in_place - fault_at:.3f} s); times since the fault count from +{in_place:.3f} s")


def plain_lines(report: Mapping[str, Any]) -> list[str]:
    """The timeline as plain text lines (folded, with the time since the fault), for logs and pipes."""
    fault = fault_line(report)
    lines = ["timeline (seconds since the run began" + ("; [+s] since the fault was in place):" if fault else "):")]
    if fault:
        lines.append(f"  {fault}")
    for row in fold(report.get("timeline", [])):
        facts = " ".join(f"{k}={v}" for k, v in row.shown_facts().items())
        since = since_fault(report, row.t)
        mark = f"[{since:+.3f}]" if since is not None and since >= 0 else ""
        lines.append(f"  +{row.t:7.3f}s {mark:>10}  {row.actor:<26} {row.label()}" + (f"  ({facts})" if facts else ""))
    return lines


def detail_of(check: Mapping[str, Any], report: Mapping[str, Any] | None = None, impl: str | None = None) -> str:
    """A check's detail as printed: never empty; a "time bound" also says how much was the lab's time."""
    detail = " ".join(str(check.get("detail") or "").split()) or NO_DETAIL
    if report is not None and impl is not None and check.get("name") == "time bound":
        note = time_note(report, impl)
        if note:
            detail += f" ({note})"
    return detail


def time_note(report: Mapping[str, Any], impl: str) -> str:
    """For a "time bound" check: from when it counted, and how much of the lab's own time it left out.

    The oracle counts from :func:`bound_start`, never from ``fault_at`` (the fault asked for).
    A report written before outcomes carried ``released_at`` was judged from ``fault_at``: for
    it, the note says how much of the time was the lab's. Empty when the two are the same.
    """
    verdict = (report.get("verdicts") or {}).get(impl) or (report.get("submissions") or {}).get(impl) or {}
    outcome = verdict.get("outcome") or {}
    ended, fault_at, in_place = outcome.get("ended_at"), report.get("fault_at"), fault_in_place(report)
    if not isinstance(ended, (int, float)) or not isinstance(fault_at, (int, float)) or in_place is None:
        return ""
    if "released_at" not in outcome:
        if in_place - fault_at < 0.0005:
            return ""
        return (f"that includes the lab's own {in_place - fault_at:.3f} s to put the fault in place; "
                f"{ended - in_place:.3f} s after the fault was in place")
    start = bound_start(in_place, outcome.get("released_at"))
    if start - fault_at < 0.0005:
        return ""
    return (f"counted from +{start:.3f} s, once the fault was in place and {impl} was let past it; "
            f"the lab's own {start - fault_at:.3f} s since the fault was asked for is not counted")
