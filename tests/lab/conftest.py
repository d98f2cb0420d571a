"""Fixtures for the lab tests: the compose lab, brought up once per session by pytest-docker.

pytest-docker runs ``docker compose ... up`` before the first lab test and
``down`` after the last. Its fixtures are overridden here only where the lab
differs: our compose file, a unique project name per run (so two runs, or a
run and an instructor's lab, never share containers), and ``--wait`` so the
tests start when every healthcheck passes. A finalizer registered *before*
the lab comes up removes whatever carries this run's project label, so a
failed ``up`` or a Ctrl-C leaves nothing behind either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab.host.engine import Runner
from lab.host.topology import Lab, repo_root, sweep, unique_project

REPO = repo_root()
UP_TIMEOUT = 240


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO / "compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    # A parent test session (the leak test) hands its child a name to look for. Under pytest-xdist
    # each worker is a session of its own, with a lab of its own: the worker's id keeps them apart.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    given = os.environ.get("LAB_TEST_PROJECT")
    if given:
        return f"{given}-{worker}" if worker else given
    return unique_project(f"socket-lab-test-{worker}" if worker else "socket-lab-test")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return [f"up --detach --build --wait --wait-timeout {UP_TIMEOUT}"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --remove-orphans --timeout 5"]


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, docker_compose_project_name: str) -> Iterator[Lab]:
    project = docker_compose_project_name
    # Registered before docker_services starts anything: runs even if `up` fails half-way.
    request.addfinalizer(lambda: sweep(Runner(), project))
    request.getfixturevalue("docker_services")
    yield Lab(REPO, project=project)


@pytest.fixture(scope="session")
def docker_client() -> Iterator["docker.DockerClient"]:  # type: ignore[name-defined]  # noqa: F821
    import docker

    client = docker.from_env(timeout=30)
    yield client
    client.close()


@pytest.fixture
def healthy_before_and_reset_after(lab: Lab) -> Iterator[None]:
    """A test starts on a healthy lab and leaves no fault behind, even when it fails.

    The in-lab runner undoes its own faults; this is the host's second line, for a runner
    that died or timed out: toxiproxy-python resets the proxies, the in-lab reset the rest.
    """
    from lab.host.toxiproxy_client import python_client

    lab.wait_healthy(timeout=60)
    yield
    python_client(lab.toxiproxy_url()).reset()
    res = lab.exec("client", ["python3", "-m", "lab.inlab.runner", "reset"], timeout=60)
    assert res.returncode == 0, f"the lab could not be reset after the test: {res.stderr[-2000:]}"
