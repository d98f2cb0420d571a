"""The run report: what one scenario run produced, as one typed value written and read here only.

The in-lab runner (:mod:`lab.inlab.runner`) writes it as one JSON line; the host reads it back
(:mod:`lab.host.runner_handle`), keeps it (:mod:`lab.reports.results`), draws it and grades from
it. Every one of them names the same keys, so the keys are declared once, here, as TypedDicts,
and the version of their shape travels in the report itself::

    text = dumps(report)                 # in the container: one line of JSON, with schema_version
    report = loads(text)                 # on the host: checked, or ReportError saying what is off

A report is plain JSON on purpose (it crosses a process and a container boundary and is kept
on disk for people to read), which is why these are TypedDicts and not classes.
:data:`SCHEMA_VERSION` changes whenever a key is renamed, removed or changes its meaning;
adding an optional key does not change it.

Standard library only: it runs in the client container and on the host.
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from the
# evaluated annotations to know which keys a report may leave out.
import json
from typing import Any, NotRequired, TypedDict

from lab.inlab.scenario import Status

from lab.toolerrors import SetupError

SCHEMA_VERSION = 1



class CheckDict(TypedDict):
    """One check: a fidelity proof or an oracle's clause, with the evidence behind its answer."""

    name: str
    ok: bool
    detail: str


class OutcomeDict(TypedDict):
    """What one implementation did (:class:`lab.inlab.scenario.Outcome` as JSON)."""

    impl: str
    status: Status
    error: str | None
    errno_name: str | None
    message: str
    facts: dict[str, Any]
    ended_at: float | None
    exchanges_ok: int
    released_at: NotRequired[float | None]   # let past the fault point: where its time bound starts
    corrupt: int
    measurements: dict[str, Any]


class VerdictDict(TypedDict):
    """An implementation judged against its oracle."""

    ok: bool
    checks: list[CheckDict]
    outcome: OutcomeDict


class SubmissionDict(TypedDict):
    """A submitted implementation: run beside the lab's own, judged on the host by the grader."""

    judged: bool
    checks: list[CheckDict]
    outcome: OutcomeDict
    fidelity: NotRequired[list[CheckDict]]   # the fault proofs on its own connections (prove_each)


class ScenarioDict(TypedDict):
    """The scenario's own words (:meth:`lab.inlab.scenario.Scenario.summary`)."""

    name: str
    title: str
    howto: str
    path: str
    wire: str
    injection: str
    remember: str
    look_for: NotRequired[str]
    watchdog: NotRequired[float | None]
    reach_bytes: NotRequired[int | None]
    expect: dict[str, dict[str, Any]]


class RunReport(TypedDict):
    """One scenario run, as the runner reports it."""

    schema_version: int
    scenario: ScenarioDict
    ok: bool
    aborted: str | None
    fault_at: float | None
    watchdog_s: float
    fidelity: list[CheckDict]
    fidelity_ok: bool
    verdicts: dict[str, VerdictDict]
    timeline: list[dict[str, Any]]
    facts: dict[str, Any]
    bounds: dict[str, float]
    submissions: NotRequired[dict[str, SubmissionDict]]
    pcaps: NotRequired[dict[str, str]]       # base64 pcap per capture point, only when asked for


REQUIRED = tuple(sorted(RunReport.__required_keys__))


class ReportError(SetupError):
    """A run report that this version of the lab cannot read (wrong shape or schema version)."""


def dumps(report: RunReport, *, indent: int | None = None) -> str:
    """The report as JSON: one line (the runner prints it last), or indented for a file people read."""
    return json.dumps(report, indent=indent, ensure_ascii=False)


def loads(text: str) -> RunReport:
    """Parse and check a report; :class:`ReportError` names what is missing or of another version."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"the run report is not JSON ({exc}); it began {text[:80]!r}") from exc
    return check(data)


def check(data: object) -> RunReport:
    """``data`` as a :class:`RunReport`, after checking its version and its required keys."""
    if not isinstance(data, dict):
        raise ReportError(f"a run report is a JSON object; got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(f"run report schema_version {version!r}: this lab reads version {SCHEMA_VERSION} "
                          "(the image and the checkout differ; rebuild with `lab up`)")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ReportError(f"run report lacks {', '.join(missing)} (schema_version {SCHEMA_VERSION} requires "
                          f"{', '.join(REQUIRED)})")
    return data  # type: ignore[return-value]  # checked above; a TypedDict is a dict at run time
