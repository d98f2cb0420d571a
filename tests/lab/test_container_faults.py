"""A container-level fault from the host (docker pause) gives the same verdicts as the in-lab agent's SIGSTOP."""

from __future__ import annotations

import pytest

from tests.support.host_faults import run_with_host_faults
from lab.host.runner_handle import failed_checks
from lab.host.topology import Lab


@pytest.mark.timeout(180)
def test_docker_pause_is_a_frozen_process(lab: Lab, docker_client) -> None:  # type: ignore[no-untyped-def]
    report = run_with_host_faults(lab, docker_client, "frozen-process", {"freeze": "pause"})
    assert report["host_actions"] == ["pause", "unpause"]
    assert not failed_checks(report), "\n".join(failed_checks(report))
    assert any(c["name"].startswith("docker pause") and c["ok"] for c in report["fidelity"])
    robust, naive = report["verdicts"]["robust"]["outcome"], report["verdicts"]["naive"]["outcome"]
    assert (robust["error"], robust["facts"]["detected_by"]) == ("PeerUnresponsive", "heartbeat")
    assert naive["status"] == "blocked"
