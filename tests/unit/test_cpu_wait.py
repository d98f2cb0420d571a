"""tests/support/cpu_wait.py on made-up cgroup and /proc trees: what it sums, what it reports."""

from pathlib import Path

from tests.support import cpu_wait
from tests.support.cpu_wait import Usage

PROXY = "a" * 64
SERVER = "b" * 64


def _tree(root: Path, threads: dict[str, list[tuple[str, int, int]]], own: list[tuple[str, int, int]]) -> tuple[Path, Path]:
    cgroup, proc = root / "cgroup", root / "proc"
    for cid, rows in threads.items():
        folder = cgroup / "cpu" / "docker" / cid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tasks").write_text("".join(f"{tid}\n" for tid, _, _ in rows))
        for tid, ran, waited in rows:
            (proc / tid).mkdir(parents=True, exist_ok=True)
            (proc / tid / "schedstat").write_text(f"{ran} {waited} 7\n")
    for tid, ran, waited in own:
        (proc / "99" / "task" / tid).mkdir(parents=True, exist_ok=True)
        (proc / tid).mkdir(parents=True, exist_ok=True)
        (proc / tid / "schedstat").write_text(f"{ran} {waited} 3\n")
    return cgroup, proc


def test_snapshot_sums_each_containers_threads_and_this_process(tmp_path: Path) -> None:
    cgroup, proc = _tree(tmp_path, {PROXY: [("11", 100, 40), ("12", 5, 600)], SERVER: [("21", 9, 1)]},
                         own=[("99", 30, 2), ("100", 1, 1)])
    assert cpu_wait.snapshot(cgroup, proc, own_pid=99) == {
        PROXY: Usage(105, 640), SERVER: Usage(9, 1), cpu_wait.THIS_PROCESS: Usage(31, 3)}


def test_snapshot_reads_systemd_and_v2_layouts_by_id(tmp_path: Path) -> None:
    cgroup, proc = tmp_path / "cgroup", tmp_path / "proc"
    for rel in (f"cpu/system.slice/docker-{PROXY}.scope/tasks", f"system.slice/docker-{SERVER}.scope/cgroup.threads"):
        (cgroup / rel).parent.mkdir(parents=True)
        (cgroup / rel).write_text("5\n")
    (proc / "5").mkdir(parents=True)
    (proc / "5" / "schedstat").write_text("8 4 1\n")
    assert cpu_wait.snapshot(cgroup, proc, own_pid=1) == {PROXY: Usage(8, 4), SERVER: Usage(8, 4)}


def test_a_thread_that_ended_or_a_garbled_schedstat_counts_nothing(tmp_path: Path) -> None:
    cgroup, proc = _tree(tmp_path, {PROXY: [("11", 100, 40)]}, own=[])
    (cgroup / "cpu" / "docker" / PROXY / "tasks").write_text("11\n12\n13\n")   # 12 gone, 13 garbled
    (proc / "13").mkdir()
    (proc / "13" / "schedstat").write_text("x\n")
    assert cpu_wait.snapshot(cgroup, proc, own_pid=99)[PROXY] == Usage(100, 40)


def test_waits_are_the_differences_of_groups_in_both_most_waited_first() -> None:
    before = {PROXY: Usage(10, 100), SERVER: Usage(10, 100), "gone": Usage(1, 1)}
    after = {PROXY: Usage(20, 700_000_100), SERVER: Usage(50, 90_000_100), "new": Usage(5, 5)}
    assert list(cpu_wait.waits(before, after).items()) == [
        (PROXY, Usage(10, 700_000_000)), (SERVER, Usage(40, 90_000_000))]


def test_describe_names_the_long_waits_and_the_total() -> None:
    spent = {PROXY: Usage(50_000_000, 646_000_000), SERVER: Usage(1, 60_000_000), "c": Usage(1, 49_999_999),
             cpu_wait.THIS_PROCESS: Usage(1, 55_000_000)}
    text = cpu_wait.describe(spent, 2.5, names={PROXY: "lab-gw1-toxiproxy-1"})
    assert text.splitlines() == [
        "threads runnable but off the CPU during this test (2.50 s): 0.81 s in all, over 3 containers and this process",
        "  lab-gw1-toxiproxy-1: waited 0.646 s, ran 0.050 s",
        f"  {SERVER[:12]}: waited 0.060 s, ran 0.000 s",
        "  this test process: waited 0.055 s, ran 0.000 s",
    ]


def test_describe_says_when_nothing_waited_long() -> None:
    assert cpu_wait.describe({PROXY: Usage(1, 10)}, 1.0).endswith("; none waited 50 ms or more")
