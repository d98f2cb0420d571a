"""Every scenario, in the real lab, both implementations: the fault is proven, then every oracle holds.

Each test runs one scenario through the in-lab runner (the same path as
``lab run NAME`` and ``docker compose run``) and asserts its whole report:
the fidelity checks (the fault really happened: RSTs seen, packets dropped,
exact byte counts) and, per implementation, the outcome, the error type, the
time bound and every scenario-specific figure (RTT, throughput, exactly-once
counts). A failing check is shown by name with its measured value.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab import scenario
from lab.inlab import failed_checks, run_scenario
from lab.topology import Lab
from lab.toxics import python_client

SCENARIOS = scenario.discover()


@pytest.fixture(autouse=True)
def healthy_before_and_reset_after(lab: Lab) -> Iterator[None]:
    """Each test starts on a healthy lab and leaves no fault behind, even when it fails.

    The runner undoes its own faults; this is the host's second line, for a runner that
    died or timed out: toxiproxy-python resets the proxies, the in-lab reset the rest.
    """
    rows = lab.status()
    if len(rows) < 5 or any(r.get("State") != "running" or r.get("Health") != "healthy" for r in rows):
        lab.up()  # --wait: brings back what a previous test left down, or fails saying what is sick
    yield
    python_client(lab.toxiproxy_url()).reset()
    res = lab.exec("client", ["python3", "-m", "lab.runner", "reset"], timeout=60)
    assert res.returncode == 0, f"the lab could not be reset after the test: {res.stderr[-2000:]}"


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
