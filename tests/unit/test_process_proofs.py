"""The process faults' helpers without a lab: a server found by its port, a start time from /proc,
an event marked at its own time, and who closed a connection first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lab.evidence.legs import Conn
from lab.evidence.pcap import ACK, FIN, RST, Endpoint, Segment
from lab.inlab import scenario
from lab.inlab.agent.procfs import read_processes
from lab.inlab.processes import describe, listening_port, server_named, serving
from lab.inlab.proofs import server_closed_first
from lab.inlab.runner import Context

THREADED = {"pid": 7, "state": "T", "role": "threaded",
            "cmdline": "python3 -m lab.server --impl=threaded --backlog=8 --port=7000 --control-port=7001"}
SELECTORS = {"pid": 8, "state": "S", "role": "selectors", "cmdline": "python3 -m lab.server --impl selectors --port 7100"}
SUPERVISOR = {"pid": 1, "state": "S", "role": "supervisor", "cmdline": "python3 -m lab.server.supervisor -- --port=7000"}


def test_the_server_behind_a_port_is_found_by_its_command_line_not_its_name() -> None:
    procs = [SUPERVISOR, SELECTORS, THREADED]
    assert serving(procs, 7000) is THREADED and serving(procs, 7100) is SELECTORS
    assert serving(procs, 7200) is None and listening_port(SUPERVISOR) is None
    assert listening_port({"role": "threaded", "cmdline": "python3 -m lab.server"}) == 7000   # lab.server's default
    assert describe(THREADED) == "pid 7 (threaded, port 7000, state T)" and describe(None) == "none"
    assert server_named(7100) == "selectors"
    with pytest.raises(ValueError, match="no lab server listens on port 9"):
        server_named(9)


def test_a_process_start_time_comes_from_its_stat_and_the_uptime(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    # pid (comm) state ppid ... field 22 (starttime, clock ticks since boot) = 1000, i.e. 10 s at 100 Hz
    fields = ["S", "1"] + ["0"] * 17 + ["1000", "0"]
    (proc / "42" / "stat").write_text("42 (python3) " + " ".join(fields) + "\n")
    (proc / "42" / "cmdline").write_bytes(b"python3\0-m\0lab.server\0")
    (proc / "uptime").write_text("12.50 20.00\n")
    [info] = read_processes(proc)
    ticks = os.sysconf("SC_CLK_TCK")
    assert info.started == pytest.approx(time.time() - (12.5 - 1000 / ticks), abs=0.5)
    assert info.describe()["started"] == info.started
    (proc / "uptime").unlink()   # unknown, not invented
    assert read_processes(proc)[0].started is None


def test_an_event_learnt_of_later_goes_into_the_timeline_at_its_own_time() -> None:
    ctx = Context(scenario.get("process-crash"), ["robust"])
    ctx.timeline = [{"t": 0.1, "actor": "lab", "what": "a"}, {"t": 0.9, "actor": "lab", "what": "c"}]
    t = ctx.mark_at(time.time() - (ctx.now() - 0.5), "server", "b", pid=3)
    assert t == pytest.approx(0.5, abs=0.05)
    assert [e["what"] for e in ctx.timeline] == ["a", "b", "c"] and ctx.timeline[1]["pid"] == 3


def _seg(t: float, src: Endpoint, dst: Endpoint, flags: int) -> Segment:
    return Segment(0, int(t * 1e9), src, dst, 1, 1, flags | ACK, 100, 0)


CLIENT, SERVER = Endpoint("10.0.0.2", 40000), Endpoint("10.0.0.3", 7000)


@pytest.mark.parametrize(("segments", "ok"), [
    ([(10.1, SERVER, CLIENT, FIN), (10.2, CLIENT, SERVER, FIN)], True),     # the dead server's kernel first
    ([(10.1, SERVER, CLIENT, RST)], True),                                  # an RST counts, and no client FIN
    ([(10.1, CLIENT, SERVER, FIN), (10.2, SERVER, CLIENT, FIN)], False),    # the teardown's order: a healthy run
    ([(9.0, SERVER, CLIENT, FIN)], False),                                  # before the fault: not its doing
    ([], False),
])
def test_the_server_closed_first_only_after_the_moment_and_before_the_client(segments: list, ok: bool) -> None:
    conn = Conn(CLIENT, SERVER, [_seg(*s) for s in segments])
    got, detail = server_closed_first(conn, since=10.0)
    assert got is ok and detail
