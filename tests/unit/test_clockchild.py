"""The clock-jump machinery without libfaketime: the child's JSON-lines protocol and its arguments, the
offset file the fault writes, the child's environment, and the runner's reading of the child's lines
(lab/scenarios/clock_jump.py: Child._read, skew_jump, prove_jump)."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from lab.inlab import clockchild, faults
from lab.inlab.faults import clock_jump
from lab.inlab.faults.clock_jump import CLOCK_FILE, ClockJump, WallClock, child_env
from lab.scenarios import clock_jump as scenario


# The child's side of the protocol -----------------------------------------------------------------

def test_emit_writes_one_json_object_per_line_and_nothing_after_done(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clockchild, "_finished", False)
    clockchild.emit(event="waiting", skew=1.5, m=2.0)
    clockchild.emit(event="done", status="error", error="TimeoutError", t=0.3)
    clockchild.emit(event="clock", skew=1.5, t=0.4, m=2.4)   # a tick racing the end: dropped
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"event": "waiting", "skew": 1.5, "m": 2.0},
                                                    {"event": "done", "status": "error", "error": "TimeoutError",
                                                     "t": 0.3}]


def test_skew_is_wall_minus_monotonic_to_a_tenth_of_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clockchild.time, "time", lambda: 1_700_003_600.123456)
    monkeypatch.setattr(clockchild.time, "monotonic", lambda: 3600.0)
    assert clockchild.skew() == 1_700_000_000.1235


@pytest.mark.parametrize(("argv", "needle"), [
    (["--impl", "naive", "--host", "h", "--port", "1"], "invalid choice: 'naive' (choose from 'robust', 'naive-walltime')"),
    (["--host", "h", "--port", "1"], "the following arguments are required: --impl"),
    (["--impl", "robust", "--port", "1"], "the following arguments are required: --host"),
    (["--impl", "robust", "--host", "h", "--port", "seven"], "argument --port: invalid int value: 'seven'"),
    (["--impl", "robust", "--host", "h", "--port", "1", "--deadline", "soon"],
     "argument --deadline: invalid float value: 'soon'"),
])
def test_bad_arguments_are_refused_before_anything_connects(argv: list[str], needle: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        clockchild.main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert needle in captured.err and captured.out == ""


# The offset file and the child's environment -------------------------------------------------------

def test_the_offset_file_holds_one_signed_line_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "lab-faketime"
    clock = WallClock(path)
    clock.jump(3600)
    assert path.read_text() == "+3600\n"
    clock.jump(-3600)
    assert path.read_text() == "-3600\n"
    clock.reset()
    assert path.read_text() == "+0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab-faketime"]     # the .new file was renamed over it
    assert WallClock().path == CLOCK_FILE == Path("/tmp/lab-faketime")


def test_the_child_environment_preloads_libfaketime_and_leaves_monotonic_alone(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    monkeypatch.setattr(clock_jump.glob, "glob", lambda pattern: [lib] if pattern ==
                        "/usr/lib/*/faketime/libfaketime.so.1" else [])
    monkeypatch.setenv("FAKETIME", "+1d")
    env = child_env(tmp_path / "ft")
    assert {k: env[k] for k in ("LD_PRELOAD", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_NO_CACHE",
                                "FAKETIME_DONT_FAKE_MONOTONIC", "FAKETIME_DONT_RESET")} == {
        "LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(tmp_path / "ft"), "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
    assert "FAKETIME" not in env and env["PATH"] == os.environ["PATH"]
    assert os.environ["FAKETIME"] == "+1d"          # the runner's own environment is untouched


def test_without_libfaketime_the_child_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_jump.glob, "glob", lambda pattern: [])
    assert clock_jump.preload() is None
    with pytest.raises(FileNotFoundError, match=r"libfaketime is not installed in this image"):
        child_env()


class FakeWallClock:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def jump(self, offset_s: int) -> None:
        self.calls.append(("jump", offset_s))

    def reset(self) -> None:
        self.calls.append(("reset", None))


class ClockContext:
    def __init__(self) -> None:
        self.wall_clock = FakeWallClock()


def test_the_fault_writes_the_offset_and_clear_writes_zero_once() -> None:
    ctx = ClockContext()
    fault = faults.create("clock-jump", ctx, {"offset_s": -3600})  # type: ignore[arg-type]
    assert isinstance(fault, ClockJump)
    fault.clear()                                    # not applied: nothing to undo
    fault.apply()
    fault.clear()
    fault.clear()
    assert ctx.wall_clock.calls == [("jump", -3600), ("reset", None)]
    default = faults.create("clock-jump", ClockContext(), {})  # type: ignore[arg-type]
    default.apply()
    assert default.ctx.wall_clock.calls == [("jump", 3600)]


@pytest.mark.parametrize("offset", [86401, -86401, 1.5, "3600"])
def test_the_fault_refuses_an_offset_out_of_bounds_or_not_whole_seconds(offset: Any) -> None:
    with pytest.raises(Exception, match="offset_s"):
        faults.create("clock-jump", ClockContext(), {"offset_s": offset})  # type: ignore[arg-type]


# The runner's side: reading the child's lines --------------------------------------------------------

class FakeProc:
    def __init__(self, lines: list[str]) -> None:
        self.stdout = io.StringIO("".join(lines))


def _child(lines: list[str]) -> Any:
    child = object.__new__(scenario.Child)
    child.impl, child.proc, child.events = "robust", FakeProc(lines), []
    child.waiting, child.done = scenario.threading.Event(), scenario.threading.Event()
    return child


def test_the_runner_reads_events_skips_what_is_not_json_and_marks_waiting_and_done() -> None:
    child = _child(['{"event": "waiting", "skew": 10.0, "m": 1.0}\n', "Traceback (most recent call last):\n",
                    '{"event": "clock", "skew": 10.0, "t": 0.1, "m": 1.1}\n',
                    '{"event": "done", "status": "error", "error": "PeerUnresponsive", "t": 5.0}\n'])
    child._read()
    assert [e["event"] for e in child.events] == ["waiting", "clock", "done"]
    assert child.waiting.is_set() and child.done.is_set()
    assert child.result() == {"event": "done", "status": "error", "error": "PeerUnresponsive", "t": 5.0}


def test_a_child_that_dies_silently_is_done_with_no_result() -> None:
    child = _child(["not json\n"])
    child._read()
    assert child.events == [] and child.done.is_set() and not child.waiting.is_set()
    assert child.result() is None


UPTIME_AT = 50.0   # the kernel's uptime when the fake process's monotonic clock reads 100.0


def _bracket(m: float, skip: float = 0.0) -> dict[str, float]:
    """/proc/uptime read just before and after a monotonic reading ``m`` (10 ms steps, truncated); ``skip``
    is how far the monotonic clock has run ahead of the kernel's."""
    u = m - 100.0 + UPTIME_AT - skip
    return {"u0": math.floor((u - 0.002) * 100) / 100, "u1": math.floor((u + 0.002) * 100) / 100}


def _ticks(skews: list[float], start: float = 100.0, step: float = 0.1, *, skip_from: int | None = None,
           skip: float = 0.0) -> list[dict[str, Any]]:
    def clock(i: int, m: float) -> dict[str, float]:
        return {"m": m, **_bracket(m, skip if skip_from is not None and i >= skip_from else 0.0)}

    out = [{"event": "waiting", "skew": skews[0], **clock(0, start)}]
    out += [{"event": "clock", "skew": s, "t": round((i + 1) * step, 4), **clock(i + 1, round(start + (i + 1) * step, 4))}
            for i, s in enumerate(skews[1:])]
    return out


def test_skew_jump_reads_the_skew_on_each_side_of_the_jump() -> None:
    events = _ticks([5.0, 5.0, 5.0, 3605.0, 3605.0]) + [{"event": "done", "status": "error", "t": 0.4}]
    before, after, apart, when, gap = scenario.skew_jump(events, at=100.25)
    assert (before, after) == (5.0, 3605.0)
    assert apart <= 0.0 and gap == pytest.approx(0.1) and when == pytest.approx(0.05)


def test_a_reading_just_after_the_write_counts_and_the_moment_is_the_first_moved_skew() -> None:
    # A deadline the jump fires at once: "done" comes 10 ms after the write, before any tick.
    events = _ticks([5.0, 5.0, 5.0]) + [{"event": "done", "status": "error", "skew": 3605.0, "m": 100.31}]
    before, after, _apart, when, _gap = scenario.skew_jump(events, at=100.3)
    assert (before, after) == (5.0, 3605.0) and when == pytest.approx(0.01)
    # Readings after the write that still show the old skew are not when it was seen.
    late = _ticks([5.0, 5.0, 5.0, 5.0, 3605.0])
    assert scenario.skew_jump(late, at=100.25)[3] == pytest.approx(0.15)


def test_skew_jump_needs_readings_on_both_sides() -> None:
    assert scenario.skew_jump(_ticks([5.0, 5.0]), at=200.0) is None
    assert scenario.skew_jump(_ticks([5.0, 5.0]), at=0.0) is None
    assert scenario.skew_jump([{"event": "done", "status": "error"}], at=0.0) is None


class ProofContext:
    def __init__(self) -> None:
        self.proofs: list[tuple[str, bool, str]] = []

    def prove(self, name: str, ok: bool, detail: str) -> None:
        self.proofs.append((name, ok, detail))


@pytest.mark.parametrize(("skews", "gap", "skip", "ok"), [
    ([5.0, 5.0, 3605.0, 3605.0], 0.1, 0.0, True),
    ([5.0, 5.0, 365.0, 365.0], 0.1, 0.0, False),          # a tenth of the jump (the "tenth" mutant)
    ([5.0, 5.0, -3595.0, -3595.0], 0.1, 0.0, False),      # the other way
    ([5.0, 5.0, 5.0, 5.0], 0.1, 0.0, False),              # no jump at all
    ([5.0, 5.0, 3605.0, 3605.0], 0.6, 0.0, True),         # kept off the CPU for 0.6 s: a gap, not a jump
    ([5.0, 5.0, 3605.0, 3605.0], 0.1, 0.6, False),        # the monotonic clock skipped 0.6 s
    ([5.0, 5.0, 3605.0, 3605.0], 0.1, 0.04, False),       # ... or only 40 ms
])
def test_the_jump_proof_wants_exactly_the_offset_and_a_monotonic_clock_in_step_with_the_kernel(
        skews: list[float], gap: float, skip: float, ok: bool) -> None:
    ctx = ProofContext()
    events = _ticks(skews, step=gap, skip_from=2, skip=skip)
    scenario.prove_jump(ctx, "jump forward", {"robust": events}, 100.0 + gap * 1.5, 3600)
    [(name, held, detail)] = ctx.proofs
    assert name == "jump forward: each process's wall clock moved by +3600 s and its monotonic clock did not jump"
    assert held is ok, detail
    assert detail.startswith("robust: time.time() − time.monotonic() went 5.000 → ")
    assert f"largest gap between readings {gap * 1000:.0f} ms" in detail


def test_the_drift_is_none_without_uptime_brackets_and_then_the_proof_fails() -> None:
    events = [{k: v for k, v in e.items() if k not in ("u0", "u1")} for e in _ticks([5.0, 5.0, 3605.0])]
    assert scenario.drift(events) is None
    ctx = ProofContext()
    scenario.prove_jump(ctx, "jump forward", {"robust": events}, 100.15, 3600)
    [(_name, held, detail)] = ctx.proofs
    assert held is False and "no uptime readings to compare its monotonic clock with" in detail


def test_a_stall_inside_a_bracket_widens_it_and_never_parts_the_offsets() -> None:
    # 0.3 s off the CPU between reading the uptime and reading the monotonic clock.
    steady = _ticks([5.0, 5.0, 5.0])
    stalled = dict(steady[1], u0=round(steady[1]["u0"] - 0.3, 2))
    assert scenario.drift([steady[0], stalled, steady[2]]) <= 0.0


def test_the_jump_proof_fails_without_readings_or_processes() -> None:
    ctx = ProofContext()
    scenario.prove_jump(ctx, "jump back", {"naive-walltime": []}, 100.0, -3600)
    scenario.prove_jump(ctx, "jump back", {}, 100.0, -3600)
    assert ctx.proofs == [
        ("jump back: each process's wall clock moved by -3600 s and its monotonic clock did not jump", False,
         "naive-walltime: no clock readings on both sides of the jump"),
        ("jump back: each process's wall clock moved by -3600 s and its monotonic clock did not jump", False,
         "no process ran")]
