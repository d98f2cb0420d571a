"""The compose wrapper's commands and the isolation check, without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.host.engine import EngineError, Result
from lab.inlab.health import default_routes
from lab.host.topology import Lab, check_project_name, leftovers, unique_project
from tests.support.fakes import FakeRunner


def test_project_names_are_checked() -> None:
    assert check_project_name("socket-lab-test-1a2b") == "socket-lab-test-1a2b"
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        check_project_name("Socket Lab")
    assert unique_project() != unique_project()


def test_exec_runs_inside_the_named_project(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose"): Result(0, "out")})
    lab = Lab(tmp_path, project="p1", runner=runner)
    res = lab.exec("client", ["python3", "-V"], env={"A": "1"})
    assert res.stdout == "out"
    assert runner.calls[0] == ("docker", "compose", "--project-directory", str(tmp_path), "-f",
                               str(tmp_path / "compose.yaml"), "-p", "p1", "exec", "-T", "-e", "A=1", "client",
                               "python3", "-V")


def test_failed_up_takes_the_project_down(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose"): Result(1, "", "dependency failed to start: server is unhealthy")})
    with pytest.raises(EngineError, match="unhealthy"):
        with Lab(tmp_path, project="p2", runner=runner):
            raise AssertionError("not reached")
    assert any("down" in call for call in runner.calls)


def test_api_port_is_read_from_compose(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose"): Result(0, "127.0.0.1:49153\n")})
    assert Lab(tmp_path, project="p3", runner=runner).toxiproxy_url() == "http://127.0.0.1:49153"


def test_leftovers_filter_by_label_and_project() -> None:
    runner = FakeRunner({("docker", "ps"): Result(0, "p4-server-1\n"), ("docker", "network"): Result(0, ""),
                         ("docker", "volume"): Result(0, "")})
    assert leftovers(runner, "p4") == {"containers": ["p4-server-1"], "networks": [], "volumes": []}
    assert all("label=com.docker.compose.project=p4" in call for call in runner.calls)


ROUTE_WITH_DEFAULT = """Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
eth0\t00000000\t010013AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000013AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
ROUTE_ISOLATED = ROUTE_WITH_DEFAULT.splitlines()[0] + "\n" + ROUTE_WITH_DEFAULT.splitlines()[2] + "\n"
# The kernel's own unreachable ::/0 entry on lo is not a way out.
IPV6_LO_ONLY = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n")


@pytest.mark.parametrize(("route", "expected"), [(ROUTE_WITH_DEFAULT, ["ipv4 default via eth0"]),
                                                 (ROUTE_ISOLATED, [])])
def test_default_routes_are_read_from_proc(tmp_path: Path, route: str, expected: list[str]) -> None:
    (tmp_path / "route").write_text(route)
    (tmp_path / "ipv6_route").write_text(IPV6_LO_ONLY)
    assert default_routes(tmp_path) == expected


def _ps(*states: tuple[str, str, str]) -> Result:
    import json

    return Result(0, "\n".join(json.dumps({"Service": s, "State": st, "Health": h}) for s, st, h in states))


# Only the client-agent has a healthcheck (it asks the others): for the rest Docker says "".
HEALTHY = [("toxiproxy", "running", ""), ("client-agent", "running", "healthy"), ("client", "running", ""),
           ("server", "running", ""), ("server-agent", "running", ""),
           ("router", "running", ""), ("router-agent", "running", ""),
           ("server2", "running", ""), ("server2-agent", "running", "")]


def test_wait_healthy_waits_out_a_briefly_unhealthy_service(tmp_path: Path) -> None:
    sick = [("client-agent", "running", "unhealthy"), *HEALTHY[:1], *HEALTHY[2:]]
    runner = FakeRunner({("docker", "compose"): [_ps(*sick), _ps(*sick), _ps(*HEALTHY)]})
    clock = [0.0]
    Lab(tmp_path, project="p5", runner=runner).wait_healthy(10, clock=lambda: clock[0],
                                                           sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    assert clock[0] == 1.0  # two half-second waits
    assert not any("up" in call for call in runner.calls)  # running but unhealthy: no restart


def test_wait_healthy_names_the_sick_service_when_time_runs_out(tmp_path: Path) -> None:
    sick = [("client-agent", "running", "unhealthy"), *HEALTHY[:1], *HEALTHY[2:]]
    runner = FakeRunner({("docker", "compose"): _ps(*sick)})
    clock = [0.0]
    with pytest.raises(EngineError, match="not healthy after 3 s: client-agent: running/unhealthy"):
        Lab(tmp_path, project="p6", runner=runner).wait_healthy(3, clock=lambda: clock[0],
                                                                sleep=lambda s: clock.__setitem__(0, clock[0] + s))


def test_wait_healthy_brings_back_a_stopped_service(tmp_path: Path) -> None:
    stopped = [("server", "exited", ""), *HEALTHY[:1], *HEALTHY[1:3], *HEALTHY[4:]]
    runner = FakeRunner({("docker", "compose"): [_ps(*stopped), Result(0), _ps(*HEALTHY)]})
    Lab(tmp_path, project="p7", runner=runner).wait_healthy(10, clock=lambda: 0.0, sleep=lambda s: None)
    assert any(call[-3:] == ("up", "--detach", "--no-recreate") for call in runner.calls)
