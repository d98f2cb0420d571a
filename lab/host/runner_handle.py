"""Running the in-lab scenario runner from the host: the one path the CLI and the tests share.

The runner itself (:mod:`lab.inlab.runner`) lives in the client container; the host
asks it to run a scenario through ``docker compose exec`` and reads back its
JSON report. Exit code 2 from the runner means bad input (an unknown
scenario, a malformed scenario file) and becomes :class:`ScenarioInputError`
carrying the runner's own message.
"""

from __future__ import annotations

import json
from typing import Any

from lab.host.engine import EngineError
from lab.host.topology import Lab

MARGIN_S = 90.0


class ScenarioInputError(ValueError):
    """The runner refused the request; the message is the runner's."""


def run_scenario(lab: Lab, name: str, *, impls: list[str] | None = None, watchdog: float | None = None,
                 timeout: float | None = None, pcaps: bool = False) -> dict[str, Any]:
    """Run one scenario in the lab and return its report.

    ``pcaps`` asks the runner to include its packet captures, base64, as ``report["pcaps"]``.
    """
    argv = ["python3", "-m", "lab.inlab.runner", "run", name, "--json"]
    if pcaps:
        argv.append("--pcaps")
    for impl in impls or []:
        argv += ["--impl", impl]
    if watchdog is not None:
        argv += ["--watchdog", str(watchdog)]
    res = lab.exec("client", argv, timeout=timeout or (watchdog or 30.0) + MARGIN_S)
    if res.returncode == 2:
        raise ScenarioInputError(res.stderr.strip().removeprefix("lab.inlab.runner: "))
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode not in (0, 1) or not lines:
        raise EngineError(f"the scenario runner failed (exit {res.returncode}):\n{res.stderr.strip()[-3000:]}")
    return json.loads(lines[-1])


def failed_checks(report: dict[str, Any]) -> list[str]:
    """Every check that did not hold, as readable lines (empty when the scenario passed)."""
    bad = [f"fidelity: {c['name']}: {c['detail']}" for c in report["fidelity"] if not c["ok"]]
    if not report["fidelity"]:
        bad.append("fidelity: no evidence was recorded that the fault happened")
    for impl, verdict in report["verdicts"].items():
        bad += [f"{impl}: {c['name']}: {c['detail']}" for c in verdict["checks"] if not c["ok"]]
    if report.get("aborted"):
        bad.append(f"aborted: {report['aborted']}")
    return bad
