"""Two scenarios at once, in two labs of one pool, whose faults would disturb each other if they leaked.

host-vanishes drops every packet of the server's port 7000 for seconds; nagle-stall, at the
same time, makes 30 timed exchanges per implementation with a server on that same port 7000
and proves, from its capture, that nothing but Nagle and the delayed ACK slowed them. Had the
DROP rules (or the capture, or the agent) been shared, nagle-stall's exchanges would stall or
fail, and its capture would show segments that reached the server's interface and that the
server's kernel never acknowledged (the DROP is in INPUT, behind the capture); host-vanishes's
capture would show connections that are not its own. Each must pass exactly as it does alone.

Not "no retransmission at all": on two busy CPUs a sender's tail-loss probe now and then fires
while a delayed ACK is on its way, and the server's capture then shows the range twice. A copy
the server's interface saw twice was not lost on the way; what a leaked DROP leaves is bytes
never acknowledged, and seconds of stall that nagle-stall's own time bounds fail on.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lab.host.pool import LabPool
from lab.host.runner_handle import failed_checks, run_scenario
from lab.host.topology import Lab, repo_root

REPO = repo_root()


def _connections(report: dict[str, Any], where: str = "server") -> list[dict[str, Any]]:
    return report["facts"]["captures"][where]["summary"]["connections"]


@pytest.mark.timeout(400)
def test_two_scenarios_at_once_never_see_each_others_fault(lab: Lab) -> None:
    spans: dict[str, tuple[str, float, float]] = {}

    def run(where: Lab, name: str) -> dict[str, Any]:
        began = time.monotonic()
        report = run_scenario(where, name)
        spans[name] = (where.project, began, time.monotonic())
        return report

    # The session's lab is the pool's first (left running); the second is started and removed here.
    with LabPool(REPO, lab.project, 2) as pool:
        reports = pool.map(["host-vanishes", "nagle-stall"], run, cost={"host-vanishes": 9.0, "nagle-stall": 2.0}.get)
        assert [other.project for other in pool.started] == [f"{lab.project}-j2"]

    vanish, nagle = reports["host-vanishes"], reports["nagle-stall"]
    assert vanish["ok"], failed_checks(vanish)
    assert nagle["ok"], failed_checks(nagle)
    # They really ran at the same time, in two labs: nagle-stall within host-vanishes's run.
    (lab_a, a0, a1), (lab_b, b0, b1) = spans["host-vanishes"], spans["nagle-stall"]
    assert lab_a != lab_b
    assert a0 < b1 and b0 < a1, spans
    # nagle-stall's capture: every byte either side sent, on every connection, was acknowledged.
    unacked = [(c["client"], d, c[d]["payload_bytes"], c[d]["acked_bytes"]) for c in _connections(nagle)
               for d in ("client_to_server", "server_to_client") if c[d]["acked_bytes"] != c[d]["payload_bytes"]]
    assert unacked == []
    assert sum(c["client_to_server"]["payload_bytes"] for c in _connections(nagle)) > 0
    assert {c["outcome"] for c in _connections(nagle)} == {"closed"}
    # host-vanishes's capture holds its own connections only (its subjects' and the lab's stalled one).
    own = {port for ports in vanish["facts"]["client_ports"].values() for port in ports}
    seen = {int(c["client"].rsplit(":", 1)[1]) for c in _connections(vanish)}
    assert own <= seen, (own, seen)
    foreign = seen - own
    assert len(foreign) <= 1, f"connections of no subject in host-vanishes's capture: {sorted(foreign)}"
