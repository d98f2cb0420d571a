"""lab demo for a class: plain words, a --watchdog that cannot break the lesson, quiet engine, live events."""

from __future__ import annotations

import copy
import io
import json
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.host import cli, runner_handle
from lab.host.engine import Result, Runner
from lab.inlab import runner, scenario
from lab.reports import narrate

DATA = Path(__file__).parent / "data"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def told(name: str, watchdog: float = 8.0) -> list[narrate.Step]:
    return narrate.narrate(scenario.get(name).summary(), watchdog=watchdog)


# -- the narration's words ----------------------------------------------------------------------

def test_a_signal_fault_is_told_without_the_labs_jargon() -> None:
    step = told("frozen-process")[1]
    assert step.title == "2. What the lab is about to do"
    assert step.text == ("The lab's helper beside the server sends SIGSTOP to the server process (one thread per "
                         "client) (SIGCONT afterwards).")


def test_a_router_fault_names_the_helper_on_the_router() -> None:
    step = told("partition-to-server")[1]
    assert step.title == "2. What the lab is about to do"
    assert step.text.startswith("The lab's helper on the router drops every packet towards the server's port 7000")


def test_a_proxy_fault_says_proxy_not_threaded_proxy() -> None:
    assert told("black-hole")[1].text == ("A Toxiproxy timeout toxic (downstream, timeout 0: hold forever) on the "
                                          "proxy.")


@pytest.mark.parametrize("name", sorted(scenario.discover()))
def test_no_scenario_is_narrated_with_agent_or_threaded_server_jargon(name: str) -> None:
    text = " ".join(f"{s.title} {s.text}" for s in told(name)).lower()
    assert [word for word in ("server-agent", "router-agent", "client-agent", "threaded server", "threaded proxy",
                              "forking server", "to the network") if word in text] == []


# -- --watchdog ---------------------------------------------------------------------------------

@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """No Docker: the engine logs like the real one, then the runner streams a saved run's events."""
    calls: dict[str, Any] = {"report": sample("frozen_process"), "watchdogs": []}

    def with_lab(opts, ui, job, *, keep=False):  # type: ignore[no-untyped-def]
        ui.log("starting dockerd in the background")        # what lab.host.engine says while it prepares
        ui.log("engine ready; images: local")
        return job(object())

    def run_scenario(lab, name, *, impls=None, watchdog=None, timeout=None, pcaps=False,  # type: ignore[no-untyped-def]
                     source=None, on_event=None):
        calls["watchdogs"].append(watchdog)
        report = copy.deepcopy(calls["report"])
        for event in report["timeline"]:
            on_event(event)
        return report

    monkeypatch.setattr(cli, "_with_lab", with_lab)
    monkeypatch.setattr(runner_handle, "run_scenario", run_scenario)
    return calls


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args))


def test_a_watchdog_below_robusts_bound_is_refused_before_any_lab(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("demo", "frozen-process", "--watchdog", "3", "--no-pause", "--results", str(tmp_path))
    assert result.exit_code == 2
    assert ("--watchdog 3 is shorter than the robust client's time bound in frozen-process (4 s): robust would be "
            "called blocked before it could notice the fault, and the lesson breaks; give --watchdog 4 or more"
            ) in result.stderr
    assert fake_lab["watchdogs"] == []


def test_a_watchdog_at_robusts_bound_shortens_the_demo(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("demo", "frozen-process", "--watchdog", "4", "--no-pause", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert fake_lab["watchdogs"] == [4.0]                                   # handed to the in-lab runner
    assert "naive stays blocked inside a call until the watchdog (4 s)" in result.stdout
    assert "A call still running 4 s after the fault counts as blocked" in result.stdout


def test_without_watchdog_the_scenarios_own_is_used(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    assert invoke("demo", "frozen-process", "--no-pause", "--results", str(tmp_path)).exit_code == 0
    assert fake_lab["watchdogs"] == [None]


# -- what the class sees while it runs ----------------------------------------------------------

def test_the_engines_lines_go_to_lab_log_not_the_narration(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("demo", "frozen-process", "--no-pause", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "dockerd" not in result.output and "engine ready" not in result.output
    assert (tmp_path / "lab.log").read_text() == ("lab: starting dockerd in the background\n"
                                                  "lab: engine ready; images: local\n")


def test_the_events_are_told_live_folded_between_step_5_and_step_6(fake_lab: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    out = invoke("demo", "frozen-process", "--no-pause", "--results", str(tmp_path)).stdout
    live = out[out.index("5. Running it"): out.index("6. What happened, in order")]
    lines = [line for line in live.splitlines() if line.startswith("  +") or "… and" in line]
    assert lines == [
        "  +  0.097 s  lab              ready (scenario=frozen-process, impls=['robust', 'naive'])",
        "  +  0.123 s  lab              capturing at the server (filter=tcp and port 7000)",
        "  +  0.126 s  client[naive]    connected (to=server:7000)",
        "  +  0.126 s  client[robust]   connected (to=server:7000)",
        "  +  0.129 s  client[robust]   echo intact (bytes=100)",
        "  +  0.130 s  client[naive]    echo intact (bytes=100)",
        # the fault closes both clients' runs of echoes: told before it, each once
        "              client[robust]   … and 1 more echo intact, the last at +0.131 s",
        "              client[naive]    … and 1 more echo intact, the last at +0.131 s",
        "  +  0.142 s  lab              fault: freeze (server=threaded)",
        "  +  0.148 s  lab              fault in place: freeze",
        "  +  0.148 s  client[robust]   sending after the fault",
        "  +  0.148 s  client[naive]    sending after the fault",
        "  +  3.150 s  client[robust]   ERROR PeerUnresponsive (message=no byte from server:7000 for 3.00s despite "
        "PINGs every 1s (dead_after=3s))",
        "  + 12.142 s  client[naive]    BLOCKED at the watchdog (watchdog_s=12.0)",
    ]


def test_the_host_reads_the_runners_event_lines_as_they_come() -> None:
    report = sample("refused")
    lines = ['EVENT {"t": 0.1, "actor": "lab", "what": "ready"}', "a stray line from python",
             'EVENT {"t": 0.2, "actor": "client[robust]", "what": "conn',   # cut short: skipped
             'EVENT {"t": 0.3, "actor": "client[robust]", "what": "ERROR ConnectRefused"}', json.dumps(report)]

    class FakeLab:
        argv: list[str] = []

        def exec(self, service: str, argv: list[str], *, timeout: float, stdin: bytes | None = None,
                 on_line: Any = None) -> Result:
            FakeLab.argv = argv
            for line in lines:
                on_line(line)
            return Result(0, "\n".join(lines) + "\n", "")

    seen: list[dict[str, Any]] = []
    got = runner_handle.run_scenario(FakeLab(), "refused", on_event=seen.append)   # type: ignore[arg-type]
    assert "--events" in FakeLab.argv
    assert seen == [{"t": 0.1, "actor": "lab", "what": "ready"},
                    {"t": 0.3, "actor": "client[robust]", "what": "ERROR ConnectRefused"}]
    assert got["scenario"]["name"] == "refused"


def test_runner_stream_hands_on_each_line_before_the_command_ends() -> None:
    seen: list[tuple[str, float]] = []
    script = "import time; print('first', flush=True); time.sleep(0.6); print('second', flush=True)"
    started = time.monotonic()
    res = Runner().stream([sys.executable, "-c", script], timeout=30,
                          on_line=lambda line: seen.append((line, time.monotonic() - started)))
    ended = time.monotonic() - started
    assert res.returncode == 0 and res.stdout == "first\nsecond\n"
    assert [line for line, _ in seen] == ["first", "second"]
    assert ended - seen[0][1] >= 0.4        # "first" arrived while the command was still sleeping


def test_runner_stream_kills_a_command_past_its_timeout() -> None:
    res = Runner().stream([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(30)"],
                          timeout=0.5, on_line=lambda line: None)
    assert res.returncode == 124 and res.stdout == "x\n"


def test_the_in_lab_runner_prints_each_mark_as_an_event_line() -> None:
    ctx = runner.Context(scenario.discover()["frozen-process"], ["robust", "naive"])
    ctx.on_event = runner.print_event
    buffer = io.StringIO()
    before = time.time()
    with redirect_stdout(buffer):
        t = ctx.mark("client[robust]", "PING", seq=1)
    line = buffer.getvalue()
    assert line.startswith("EVENT ") and line.endswith("\n") and line.count("\n") == 1
    printed = json.loads(line.removeprefix("EVENT "))
    # The line adds the wall-clock time it was printed (a live view's lag); the timeline does not.
    assert printed.pop("wall") == pytest.approx(before, abs=1.0)
    assert printed == {"t": t, "actor": "client[robust]", "what": "PING", "seq": 1}
    assert ctx.timeline == [{"t": t, "actor": "client[robust]", "what": "PING", "seq": 1}]
