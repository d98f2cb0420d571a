"""The workload driver's contract: one JSON object per line, the documented facts, and its exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.inlab.driver import body_for, main
from lab.server.behaviour import Behaviour
from lab.server.log import body_checksum
from lab.testing import running_server

from tests.support.peers import unused_port

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--connect-timeout", "1", "--read-timeout", "3", "--write-timeout", "2",
        "--heartbeat-interval", "0.25", "--dead-after", "1"]


def run(argv: list[str]) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    code = main(argv, out=out)
    lines = out.getvalue().splitlines()
    return code, [json.loads(line) for line in lines]


def assert_well_formed(events: list[dict[str, object]]) -> None:
    times = [e["t"] for e in events]
    assert all(isinstance(e["event"], str) for e in events)
    assert all(isinstance(t, float) and t >= 0 for t in times)
    assert times == sorted(times)


@pytest.mark.parametrize("impl", ["robust", "naive", "naive-fixed"])
def test_every_message_is_narrated_and_the_run_exits_0(impl):
    with running_server("threaded") as srv:
        code, events = run(["--port", str(srv.port), "--impl", impl, "--count", "5", "--size", "3000", *FAST])
        stats = srv.stats()
    assert code == 0, events
    assert_well_formed(events)
    assert [e["event"] for e in events] == ["connected"] + ["sent", "received"] * 5 + ["done"]
    assert [e["seq"] for e in events if e["event"] == "received"] == [1, 2, 3, 4, 5]
    assert all(e["bytes"] == 3000 for e in events if e["event"] in ("sent", "received"))
    assert events[-1]["sent"] == events[-1]["received"] == 5
    assert stats["delivered"] == 5
    assert stats["checksum"] == body_checksum([body_for(s, 3000) for s in range(1, 6)])


def test_refused_connection_is_an_error_event_with_errno_and_exit_1():
    started = time.monotonic()
    code, events = run(["--port", str(unused_port()), "--count", "1", *FAST])
    assert time.monotonic() - started < 1.0
    assert code == 1
    assert_well_formed(events)
    (error,) = events
    assert error["event"] == "error" and error["error"] == "ConnectRefused"
    assert error["errno_name"] == "ECONNREFUSED" and error["phase"] == "connect"


def test_a_server_that_stops_answering_reports_how_it_was_detected():
    with running_server("threaded", behaviour=Behaviour(mode="stop_reading", after=1)) as srv:
        started = time.monotonic()
        code, events = run(["--port", str(srv.port), "--count", "3", "--size", "10", *FAST])
        elapsed = time.monotonic() - started
    assert code == 1
    error = events[-1]
    assert error["event"] == "error" and error["error"] == "PeerUnresponsive"
    assert error["detected_by"] == "heartbeat"
    assert elapsed < 1.0 + 1.5  # dead_after + slack
    assert [e["event"] for e in events[:-1]] == ["connected", "sent", "received", "sent"]


def test_naive_impl_errors_are_named_by_their_exception_class():
    with running_server("threaded", behaviour=Behaviour(mode="close", after=2)) as srv:
        code, events = run(["--port", str(srv.port), "--impl", "naive", "--count", "5", "--size", "10"])
    assert code == 1
    error = events[-1]
    assert error["event"] == "error"
    assert error["error"] == "RuntimeError" and "broken" in str(error["message"])
    assert sum(e["event"] == "received" for e in events) == 2


def test_reliable_run_narrates_reconnects_and_delivers_everything_once():
    with running_server("threaded", behaviour=Behaviour(mode="close", after=10, ack_last=False)) as srv:
        code, events = run(["--port", str(srv.port), "--reliable", "--count", "40", "--size", "100",
                            "--backoff-base", "0.01", "--backoff-cap", "0.1", *FAST])
        stats = srv.stats()
    assert code == 0, events[-3:]
    assert_well_formed(events)
    names = [e["event"] for e in events]
    assert names.count("sent") == 40 and names.count("received") == 40 and names[-1] == "done"
    reconnecting = [e for e in events if e["event"] == "reconnecting"]
    assert reconnecting and all({"delay", "attempt", "error"} <= e.keys() for e in reconnecting)
    assert stats["delivered"] == 40


def test_half_close_run_reads_all_replies_after_its_fin():
    with running_server("selectors") as srv:
        code, events = run(["--port", str(srv.port), "--half-close", "--count", "4", "--size", "50", *FAST])
    assert code == 0, events
    names = [e["event"] for e in events]
    assert names == ["connected"] + ["sent"] * 4 + ["half-closed"] + ["received"] * 4 + ["done"]


@pytest.mark.parametrize(("argv", "complaint"), [
    (["--impl", "robust"], "--port"),
    (["--port", "70000"], "1 to 65535"),
    (["--port", "80", "--impl", "telnet"], "invalid choice"),
    (["--port", "80", "--count", "-1"], "count must be an integer >= 0"),
    (["--port", "80", "--pause", "soon"], "pause must be a number >= 0"),
    (["--port", "80", "--impl", "naive", "--reliable"], "need --impl robust"),
    (["--port", "80", "--heartbeat-interval", "2", "--dead-after", "1"], "greater than heartbeat_interval"),
])
def test_bad_arguments_exit_2_saying_what_was_wrong_and_what_is_accepted(argv, complaint, capsys):
    assert main(argv) == 2
    assert complaint in capsys.readouterr().err


def test_runs_as_a_module_with_the_same_exit_codes():
    env_python = sys.executable
    bad = subprocess.run([env_python, "-m", "lab.inlab.driver", "--port", "0"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "1 to 65535" in bad.stderr
    with running_server("threaded") as srv:
        good = subprocess.run([env_python, "-m", "lab.inlab.driver", "--port", str(srv.port), "--count", "2"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert good.returncode == 0, good.stderr
    assert [json.loads(line)["event"] for line in good.stdout.splitlines()] == [
        "connected", "sent", "received", "sent", "received", "done"]
