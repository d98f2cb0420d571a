"""Every scenario, in the real lab, both implementations: the fault is proven, then every oracle holds.

Each test runs one scenario through the in-lab runner (the same path as
``lab run NAME`` and ``docker compose run``) and asserts its whole report:
the fidelity checks (the fault really happened: RSTs seen, packets dropped,
exact byte counts) and, per implementation, the outcome, the error type, the
time bound and every scenario-specific figure (RTT, throughput, exactly-once
counts). A failing check is shown by name with its measured value.
"""

from __future__ import annotations


import pytest

from lab.inlab import scenario
from lab.host.runner_handle import failed_checks, run_scenario
from lab.host.topology import Lab

SCENARIOS = scenario.discover()


pytestmark = pytest.mark.usefixtures("healthy_before_and_reset_after")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(lab: Lab, name: str, request: pytest.FixtureRequest) -> None:
    chosen = SCENARIOS[name]
    request.node.add_marker(pytest.mark.timeout((chosen.watchdog or 10) + 120))
    report = run_scenario(lab, name)
    assert set(report["verdicts"]) == set(chosen.expect), "every judged implementation ran"
    assert report["fidelity"], "a scenario must prove its fault happened"
    problems = failed_checks(report)
    assert not problems, "\n".join(problems)
    assert report["ok"] is True
