"""Nothing of the lab is left after a session that failed, or that was interrupted with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lab.host.engine import Runner
from lab.host.topology import leftovers, repo_root, unique_project

REPO = repo_root()
PROBES = "tests/lab/probes/probe_sessions.py"


# SIGTERM and SIGHUP back to their defaults too: a parent started under nohup (or an xdist worker
# of one) hands its children SIGHUP as *ignored*, and the session's conftest keeps a disposition set
# on purpose; the probe is about the lab's own handlers, whatever the parent was started with.
_CHILD = ("import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.signal(signal.SIGHUP, signal.SIG_DFL); "
          "sys.exit(pytest.main(sys.argv[1:]))")


def _child(project: str, test: str) -> subprocess.Popen[str]:
    # Not an xdist worker, even when this test runs in one: the child's lab must be named `project`.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}, "LAB_TEST_PROJECT": project}
    # The child installs Python's Ctrl-C handler itself: a session started in the background by a
    # non-interactive shell inherits SIGINT as *ignored*, and Python then leaves it ignored.
    return subprocess.Popen([sys.executable, "-c", _CHILD, f"{PROBES}::{test}", "-s", "-q"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _assert_nothing_left(project: str) -> None:
    left = leftovers(Runner(), project)
    assert left == {"containers": [], "networks": [], "volumes": []}, left


def test_failed_session_leaves_nothing() -> None:
    project = unique_project("socket-lab-probe")
    child = _child(project, "test_fails_with_the_lab_up")
    try:
        out, _ = child.communicate(timeout=400)
    finally:
        child.kill()
    assert child.returncode == 1, out[-3000:]  # 1: tests ran and one failed
    assert "deliberate failure" in out
    _assert_nothing_left(project)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_interrupted_session_leaves_nothing(sig: signal.Signals) -> None:
    project = unique_project("socket-lab-probe")
    child = _child(project, "test_waits_to_be_interrupted")
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line)
            if "PROBE-READY" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=400), "".join(lines)[-3000:]
        assert leftovers(Runner(), project)["containers"], "the probe's lab should be running now"
        child.send_signal(sig)  # SIGINT is what Ctrl-C sends; SIGTERM what a cancelled job gets; SIGHUP a closed terminal
        child.wait(timeout=120)
    finally:
        child.kill()
        child.wait(timeout=30)
        reader.join(timeout=10)
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == 2, "".join(lines)[-3000:]  # 2: pytest's "interrupted"
    assert "KeyboardInterrupt" in "".join(lines)
    _assert_nothing_left(project)
