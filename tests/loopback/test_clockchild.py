"""The clock-jump child as the runner starts it (python -m lab.inlab.clockchild), here without
libfaketime, against a listener on 127.0.0.1 that never says a word: its JSON lines, in order,
and the error each implementation ends its wait with."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.scenarios import clock_jump as scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_port() -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))     # the kernel completes the handshake; nobody ever writes
    yield srv.getsockname()[1]
    srv.close()


def run_child(impl: str, port: int, deadline: float) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "lab.inlab.clockchild", "--impl", impl, "--host", "127.0.0.1",
                           "--port", str(port), "--deadline", str(deadline)],
                          cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(("impl", "error", "message"), [
    ("naive-walltime", "TimeoutError", "no reply within 0.6 s (by the wall clock)"),
    ("robust", "PeerUnresponsive", None),
])
def test_the_child_says_waiting_then_ticks_then_done(silent_port: int, impl: str, error: str,
                                                     message: str | None) -> None:
    events = run_child(impl, silent_port, 0.6)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "waiting" and kinds[-1] == "done" and kinds.count("waiting") == 1
    assert kinds.count("done") == 1 and set(kinds[1:-1]) <= {"clock"} and kinds.count("clock") >= 3
    waiting, done = events[0], events[-1]
    clock = {"m", "u0", "u1"}
    assert set(waiting) == ({"event", "skew", "deadline"} | clock if impl == "naive-walltime"
                            else {"event", "skew"} | clock)
    if impl == "naive-walltime":   # its wall-clock deadline: now (wall) + 0.6 s
        assert waiting["deadline"] == pytest.approx(waiting["skew"] + waiting["m"] + 0.6, abs=0.01)
    assert set(done) == {"event", "status", "error", "message", "t", "skew"} | clock
    assert (done["status"], done["error"]) == ("error", error)
    if message is not None:
        assert done["message"] == message
    assert 0.6 - 0.01 <= done["t"] <= 0.6 + 0.4
    ticks = [e for e in events if e["event"] == "clock"]
    assert all(set(e) == {"event", "skew", "t"} | clock for e in ticks)
    # No clock is faked here: the skew holds still (to rounding) and the monotonic readings climb.
    assert all(abs(e["skew"] - waiting["skew"]) < 0.05 for e in ticks + [done])
    assert [e["m"] for e in ticks] == sorted(e["m"] for e in ticks)
    # Each monotonic reading lies between its two uptime readings, at one offset for all: no drift.
    assert all(e["u0"] <= e["u1"] for e in events)
    assert scenario.drift(events) <= 0.0


def test_the_child_that_cannot_connect_fails_loudly(silent_port: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        closed_port = srv.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "lab.inlab.clockchild", "--impl", "naive-walltime", "--host",
                           "127.0.0.1", "--port", str(closed_port)], cwd=ROOT, capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 1 and done.stdout == ""
    assert "ConnectionRefusedError" in done.stderr
