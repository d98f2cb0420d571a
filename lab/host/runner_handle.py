"""Running the in-lab scenario runner from the host: the one path the CLI and the tests share.

The runner itself (:mod:`lab.inlab.runner`) lives in the client container; the host
asks it to run a scenario through ``docker compose exec`` and reads back its
JSON report. The runner exits with the codes of :mod:`lab.toolerrors`: its
usage exit (2: an unknown scenario, a malformed scenario file) means bad input
and becomes :class:`ScenarioInputError`, a ``UsageError`` carrying the runner's
own message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lab.host.engine import EngineError
from lab.host.topology import Lab
from lab.inlab import runreport
from lab.inlab.runner import EVENT_PREFIX
from lab.inlab.runreport import RunReport
from lab.toolerrors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

MARGIN_S = 90.0


class ScenarioInputError(UsageError):
    """The runner refused the request; the message is the runner's."""


def run_scenario(lab: Lab, name: str, *, impls: list[str] | None = None, watchdog: float | None = None,
                 timeout: float | None = None, pcaps: bool = False, mutant: str | None = None,
                 source: bytes | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> RunReport:
    """Run one scenario in the lab and return its report.

    ``pcaps`` asks the runner to include its packet captures, base64, as ``report["pcaps"]``.
    ``source`` is a scenario file's text for a scenario the image does not have (``lab run
    path/to/x.py``): it goes to the runner on stdin (``--source -``). ``on_event`` is called
    with each timeline event while the run goes on (the runner's ``--events`` lines).
    """
    argv = ["python3", "-m", "lab.inlab.runner", "run", name, "--json"]
    if on_event is not None:
        argv.append("--events")
    if source is not None:
        argv += ["--source", "-"]
    if pcaps:
        argv.append("--pcaps")
    for impl in impls or []:
        argv += ["--impl", impl]
    if watchdog is not None:
        argv += ["--watchdog", str(watchdog)]
    if mutant is not None:
        argv += ["--mutant", mutant]
    budget = timeout or (watchdog or 30.0) + MARGIN_S
    if on_event is None:
        res = lab.exec("client", argv, timeout=budget, stdin=source)
    else:
        res = lab.exec("client", argv, timeout=budget, stdin=source, on_line=events_to(on_event))
    if res.returncode == UsageError.exit_code:
        raise ScenarioInputError(res.stderr.strip().removeprefix("lab.inlab.runner: "))
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode not in (EXIT_OK, EXIT_CHECK_FAILED) or not lines:
        raise EngineError(f"the scenario runner failed (exit {res.returncode}):\n{res.stderr.strip()[-3000:]}")
    return runreport.loads(lines[-1])


def events_to(on_event: Callable[[dict[str, Any]], None]) -> Callable[[str], None]:
    """A reader of the runner's stdout lines that hands each ``EVENT {json}`` line's event on."""
    def on_line(line: str) -> None:
        if not line.startswith(EVENT_PREFIX):
            return
        try:
            event = json.loads(line[len(EVENT_PREFIX):])
        except json.JSONDecodeError:
            return   # a line cut short: the report at the end has the whole timeline anyway
        if isinstance(event, dict):
            on_event(event)
    return on_line


def failed_checks(report: RunReport) -> list[str]:
    """Every check that did not hold, as readable lines (empty when the scenario passed)."""
    bad = [f"fidelity: {c['name']}: {c['detail']}" for c in report["fidelity"] if not c["ok"]]
    if not report["fidelity"]:
        bad.append("fidelity: no evidence was recorded that the fault happened")
    for impl, verdict in report["verdicts"].items():
        bad += [f"{impl}: {c['name']}: {c['detail']}" for c in verdict["checks"] if not c["ok"]]
    if report.get("aborted"):
        bad.append(f"aborted: {report['aborted']}")
    return bad
