"""lab.host.pool: labs side by side, each doing one item at a time, longest first; all down however it ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lab.host import costs
from lab.host.pool import LabPool, lpt_order, project_names


class FakeLab:
    """A Lab as the pool uses it: up, down, status, a project name; records what happened."""

    def __init__(self, project: str, log: list[str], *, running: bool = False, fail_up: bool = False) -> None:
        self.project, self.log, self.running, self.fail_up = project, log, running, fail_up

    def status(self) -> list[dict[str, object]]:
        return [{"State": "running"}] if self.running else []

    def up(self) -> None:
        self.log.append(f"up {self.project}")
        if self.fail_up:
            raise RuntimeError(f"{self.project} would not start")
        self.running = True

    def down(self) -> None:
        self.log.append(f"down {self.project}")
        self.running = False


def make_pool(jobs: int, log: list[str], **lab_kw: object) -> LabPool:
    return LabPool(Path("."), "lab", jobs, make_lab=lambda name: FakeLab(name, log, **lab_kw))  # type: ignore[arg-type, return-value]


def test_the_projects_are_the_project_then_numbered_siblings() -> None:
    assert project_names("socket-lab", 1) == ["socket-lab"]
    assert project_names("x", 3) == ["x", "x-j2", "x-j3"]


@pytest.mark.parametrize("jobs", [0, -1, 17])
def test_a_job_count_out_of_range_says_what_is_accepted(jobs: int) -> None:
    with pytest.raises(ValueError, match=f"--jobs {jobs}: give a number of labs from 1 to 16"):
        project_names("x", jobs)


def test_longest_first_keeps_the_given_order_among_equals_and_unknowns() -> None:
    cost = {"a": 1.0, "b": 9.0, "c": 1.0, "d": 5.0}.get
    assert lpt_order(["a", "b", "c", "d", "e"], cost) == ["b", "d", "a", "c", "e"]
    assert lpt_order(["z", "y"], None) == ["z", "y"]


def test_every_item_runs_once_and_the_results_come_back_in_the_given_order() -> None:
    log: list[str] = []
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(lab: FakeLab, item: str) -> str:
        with lock:
            seen.append((lab.project, item))
        time.sleep(0.01)
        return item.upper()

    items = [f"s{i}" for i in range(9)]
    with make_pool(3, log) as p:
        results = p.map(items, work, cost={f"s{i}": float(i) for i in range(9)}.get)
    assert list(results) == items and list(results.values()) == [i.upper() for i in items]
    assert sorted(item for _, item in seen) == sorted(items)
    assert {lab for lab, _ in seen} == {"lab", "lab-j2", "lab-j3"}
    # Longest first: the three most expensive were the first three handed out.
    assert {item for _, item in seen[:3]} == {"s8", "s7", "s6"}
    assert sorted(log) == sorted(["up lab", "up lab-j2", "up lab-j3", "down lab", "down lab-j2", "down lab-j3"])


def test_each_lab_does_one_item_at_a_time() -> None:
    busy: dict[str, int] = {}
    worst = [0]
    lock = threading.Lock()

    def work(lab: FakeLab, item: int) -> int:
        with lock:
            busy[lab.project] = busy.get(lab.project, 0) + 1
            worst[0] = max(worst[0], busy[lab.project])
        time.sleep(0.005)
        with lock:
            busy[lab.project] -= 1
        return item

    with make_pool(4, []) as p:
        assert len(p.map(list(range(40)), work)) == 40
    assert worst[0] == 1


def test_the_first_failure_stops_the_queue_and_is_raised_in_the_caller() -> None:
    started: list[int] = []

    def work(lab: FakeLab, item: int) -> int:
        started.append(item)
        if item == 0:
            raise KeyError("boom")
        time.sleep(0.02)
        return item

    log: list[str] = []
    with pytest.raises(KeyError, match="boom"):
        with make_pool(2, log) as p:
            p.map(list(range(20)), work)
    assert len(started) < 20                  # nothing more was handed out after the failure
    assert "down lab" in log and "down lab-j2" in log


def test_a_lab_that_will_not_start_takes_the_others_down_too() -> None:
    log: list[str] = []
    labs: dict[str, FakeLab] = {}

    def make(name: str) -> FakeLab:
        labs[name] = FakeLab(name, log, fail_up=name == "lab-j2")
        return labs[name]

    with pytest.raises(RuntimeError, match="lab-j2 would not start"):
        with LabPool(Path("."), "lab", 3, make_lab=make):  # type: ignore[arg-type]
            pass
    assert {f"down {name}" for name in labs} <= set(log)


def test_a_lab_that_was_running_already_is_used_and_left_running() -> None:
    log: list[str] = []
    labs = {"lab": FakeLab("lab", log, running=True), "lab-j2": FakeLab("lab-j2", log)}
    with LabPool(Path("."), "lab", 2, make_lab=labs.__getitem__) as p:  # type: ignore[arg-type]
        assert [lab.project for lab in p.started] == ["lab-j2"]
    assert "down lab" not in log and "down lab-j2" in log


def test_keep_leaves_every_lab_running() -> None:
    log: list[str] = []
    with LabPool(Path("."), "lab", 2, make_lab=lambda n: FakeLab(n, log), keep=True):  # type: ignore[arg-type, return-value]
        pass
    assert not any(line.startswith("down") for line in log)


def test_ctrl_c_in_the_caller_stops_handing_out_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def work(lab: FakeLab, item: int) -> int:
        calls.append(item)
        time.sleep(0.05)
        return item

    real_join = threading.Thread.join

    def interrupted_join(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name != "MainThread" and calls:
            raise KeyboardInterrupt
        real_join(self, timeout)

    log: list[str] = []
    p = make_pool(2, log)
    p.up()
    monkeypatch.setattr(threading.Thread, "join", interrupted_join)
    with pytest.raises(KeyboardInterrupt):
        p.map(list(range(50)), work)
    monkeypatch.setattr(threading.Thread, "join", real_join)
    time.sleep(0.2)
    assert len(calls) <= 4           # each lab finished what it had, and took nothing more
    p.down()
    assert {"down lab", "down lab-j2"} <= set(log)


def test_every_scenario_has_an_expected_time() -> None:
    from lab.inlab import scenario

    missing = sorted(set(scenario.discover()) - set(costs.SECONDS))
    stale = sorted(set(costs.SECONDS) - set(scenario.discover()))
    assert (missing, stale) == ([], []), "update lab/host/costs.py from a `lab run --all --jobs 1`"
    assert all(isinstance(v, float) and v > 0 for v in costs.SECONDS.values())
