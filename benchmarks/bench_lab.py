"""Speed and scale of the lab itself: serial against concurrent, in one run, as one table.

Needs Docker and the images (``./labw engine`` once). Every figure is a whole ``lab`` command
timed from outside (``python -m lab ...``), as a user would run it, each on a project of its
own that the command brings up and removes:

* ``bring-up``: ``lab up`` of one lab to healthy (warm: images built), then ``lab down``;
  and the pool of ``--jobs`` labs brought up at once (the first line of a ``--jobs`` run);
* ``run --all``: every scenario with ``--jobs 1`` against ``--jobs J``;
* ``grade``: the same example submissions graded with ``--jobs 1`` against ``--jobs J``
  (``--scenario`` picks the scenarios; by default a mixed set of short and long ones);
* ``--suite`` (off by default: it takes about 20 minutes): the whole test suite, ``pytest -n 0``
  (one process) against ``pytest -n W --dist loadgroup`` (what ``./labw test`` runs).

The *floor* of ``run --all`` is what no schedule can beat: the longest scenario (as the
serial run measured it) plus one bring-up. Each row is given as a ratio to its serial figure
and, for ``run --all``, to the floor. The CPU seconds of each command (everything the machine
did while it ran, from /proc/stat) show how much of the wall time the CPUs could have taken:
on 2 CPUs a run that needs C CPU seconds cannot end before C / 2 s.

Rounds alternate serial and concurrent (``--rounds``, medians printed), so machine noise lands
on both. ::

    .venv/bin/python benchmarks/bench_lab.py                 # one round: about 8 minutes here
    .venv/bin/python benchmarks/bench_lab.py --rounds 3 --jobs 4
    .venv/bin/python benchmarks/bench_lab.py --skip grade    # or --skip run-all, --skip bring-up
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "submissions"
HONEST = ROOT / "tests" / "lab" / "honest"
# Ten submissions that all reach the lab (the static check refuses none of them).
SUBMISSIONS = [EXAMPLES / n for n in ("careful.py", "howto_fixed.py", "single_recv.py", "raises_at_import.py",
                                      "hangs_at_import.py")] + \
              [HONEST / n for n in ("extra_length_prefix.py", "fixed_64.py", "resends_everything.py")] + \
              [EXAMPLES / "careful.py", EXAMPLES / "howto_fixed.py"]
# Short and long ones, detection and survival: what a class's grading is made of.
GRADE_SCENARIOS = ("clean-close", "frozen-process", "fragmentation", "refused", "reset", "latency")
COMMAND_TIMEOUT = 1800.0


def busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return user + nice + system + irq + softirq


def lab(*args: str, timeout: float = COMMAND_TIMEOUT) -> tuple[float, float, str]:
    """Run ``python -m lab ARGS``: (wall seconds, CPU seconds of the whole machine, stderr)."""
    hz = os.sysconf("SC_CLK_TCK")
    cpu0, t0 = busy_jiffies(), time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    wall, cpu = time.monotonic() - t0, (busy_jiffies() - cpu0) / hz
    if proc.returncode not in (0, 1):   # 1: some verdict failed, which is a result, not a broken run
        raise SystemExit(f"lab {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stderr


def project() -> str:
    return f"socket-lab-bench-{uuid.uuid4().hex[:6]}"


def bring_up() -> float:
    name = project()
    try:
        wall, _, err = lab("up", "--project", name)
        match = re.search(r"up and healthy \(([\d.]+) s\)", err)
        return float(match.group(1)) if match else wall
    finally:
        lab("down", "--project", name)


def pool_up_seconds(stderr: str) -> float | None:
    match = re.search(r"up and healthy in ([\d.]+) s", stderr)
    return float(match.group(1)) if match else None


def run_all(jobs: int, out: Path) -> dict[str, float]:
    junit = out / f"junit-{jobs}.xml"
    wall, cpu, err = lab("run", "--all", "--jobs", str(jobs), "--project", project(), "--results",
                         str(out / f"all-{jobs}"), "--junit", str(junit))
    per = scenario_seconds(junit)
    failed = re.findall(r"\] (\S+): FAIL", err)
    if failed:   # the temporary folder goes at the end: a failed scenario's evidence is kept in results/
        keep = ROOT / "results" / f"bench-lab-{time.strftime('%Y%m%dT%H%M%S')}-jobs{jobs}"
        for name in failed:
            shutil.copytree(out / f"all-{jobs}" / name, keep / name, dirs_exist_ok=True)
        print(f"  kept the evidence of {', '.join(failed)} in {keep}", file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "up": pool_up_seconds(err) or 0.0, "longest": max(per.values()),
            "longest_name": max(per, key=per.get), "failed": len(failed), "failed_names": failed}  # type: ignore[dict-item, arg-type]


def scenario_seconds(junit: Path) -> dict[str, float]:
    """Each scenario's host-side seconds: its JUnit cases' time (every case of a scenario has the run's)."""
    per: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("classname", "").rsplit(".", 1)[-1] or case.get("name", "")
        per[name] = max(per.get(name, 0.0), float(case.get("time") or 0.0))
    return per


def class_folder(out: Path) -> Path:
    """The ten submissions as a class's folder (two of them twice, under other names)."""
    folder = out / "class"
    if not folder.exists():
        folder.mkdir()
        for i, path in enumerate(SUBMISSIONS, start=1):
            (folder / f"s{i:02d}_{path.name}").write_bytes(path.read_bytes())
    return folder


def grade(jobs: int, out: Path, scenarios: tuple[str, ...]) -> dict[str, float]:
    args = ["grade", str(class_folder(out)), "--jobs", str(jobs), "--project", project(), "--results",
            str(out / f"grade-{jobs}")]
    for name in scenarios:
        args += ["--scenario", name]
    wall, cpu, err = lab(*args)
    return {"wall": wall, "cpu": cpu, "up": pool_up_seconds(err) or 0.0}


def suite(workers: int) -> dict[str, float]:
    """The whole test suite on ``workers`` xdist workers (0: one process), as ./labw test runs it."""
    hz = os.sysconf("SC_CLK_TCK")
    cpu0, t0 = busy_jiffies(), time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
                           "--dist", "loadgroup"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall, cpu = time.monotonic() - t0, (busy_jiffies() - cpu0) / hz
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"wall": wall, "cpu": cpu, "exit": proc.returncode, "summary": summary}  # type: ignore[dict-item]


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=4, help="labs side by side in the concurrent runs (default 4)")
    ap.add_argument("--rounds", type=int, default=1, help="serial/concurrent pairs per figure (medians printed)")
    ap.add_argument("--scenario", action="append", default=None, help="grade in this scenario (repeatable)")
    ap.add_argument("--skip", action="append", default=[], choices=("bring-up", "run-all", "grade"))
    ap.add_argument("--suite", type=int, default=None, metavar="W",
                    help="also the whole test suite, one process against W xdist workers")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    opts = ap.parse_args(argv)
    scenarios = tuple(opts.scenario or GRADE_SCENARIOS)
    figures: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
        out = Path(tmp)
        for round_ in range(opts.rounds):
            print(f"round {round_ + 1}/{opts.rounds}", file=sys.stderr)
            if "bring-up" not in opts.skip:
                figures.setdefault("up", []).append({"wall": bring_up()})
            # Serial first in even rounds, concurrent first in odd ones.
            order = (1, opts.jobs) if round_ % 2 == 0 else (opts.jobs, 1)
            if "run-all" not in opts.skip:
                for jobs in order:
                    figures.setdefault(f"all-{jobs}", []).append(run_all(jobs, out))
                    print(f"  run --all --jobs {jobs}: {figures[f'all-{jobs}'][-1]['wall']:.1f} s", file=sys.stderr)
            if "grade" not in opts.skip:
                for jobs in order:
                    figures.setdefault(f"grade-{jobs}", []).append(grade(jobs, out, scenarios))
                    print(f"  grade --jobs {jobs}: {figures[f'grade-{jobs}'][-1]['wall']:.1f} s", file=sys.stderr)
            if opts.suite:
                for workers in ((0, opts.suite) if round_ % 2 == 0 else (opts.suite, 0)):
                    figures.setdefault(f"suite-{workers}", []).append(suite(workers))
                    print(f"  test suite -n {workers}: {figures[f'suite-{workers}'][-1]['wall']:.1f} s "
                          f"({figures[f'suite-{workers}'][-1]['summary']})", file=sys.stderr)
    print_table(figures, opts.jobs, opts.rounds, scenarios, opts.suite)
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


def print_table(figures: dict[str, list[dict[str, float]]], jobs: int, rounds: int,
                scenarios: tuple[str, ...], workers: int | None = None) -> None:
    cpus = os.cpu_count() or 1
    print(f"\nlab speed, {cpus} CPUs, {rounds} round(s), medians; --jobs {jobs} against --jobs 1 in the same run\n")
    print(f"| {'what':<44} | {'wall s':>7} | {'CPU s':>7} | {'vs serial':>9} | {'vs floor':>8} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 10}|")
    up = median(figures["up"], "wall") if "up" in figures else None
    if up is not None:
        print(f"| {'bring-up of one lab, warm, to healthy':<44} | {up:>7.1f} | {'':>7} | {'':>9} | {'':>8} |")
    if "all-1" in figures:
        serial = figures["all-1"]
        longest = median(serial, "longest")
        floor = longest + (up if up is not None else median(serial, "up"))
        s_wall = median(serial, "wall")
        for key, label in (("all-1", "run --all --jobs 1"), (f"all-{jobs}", f"run --all --jobs {jobs}")):
            rows = figures.get(key)
            if not rows:
                continue
            wall = median(rows, "wall")
            failed = sum(int(r["failed"]) for r in rows)
            note = f" ({failed} FAIL)" if failed else ""
            print(f"| {label + note:<44} | {wall:>7.1f} | {median(rows, 'cpu'):>7.1f} | {s_wall / wall:>8.2f}× | "
                  f"{wall / floor:>7.2f}× |")
        pool_up = median(figures[f"all-{jobs}"], "up") if f"all-{jobs}" in figures else None
        if pool_up is not None:
            print(f"| {f'bring-up of {jobs} labs at once (in run --all)':<44} | {pool_up:>7.1f} | {'':>7} | "
                  f"{'':>9} | {'':>8} |")
        name = serial[0]["longest_name"]
        print(f"| {f'floor: longest scenario ({name}) + bring-up':<44} | {floor:>7.1f} | {'':>7} | {'':>9} | "
              f"{1.0:>7.2f}× |")
        cpu_bound = median(figures.get(f"all-{jobs}", serial), "cpu") / cpus
        print(f"| {f'CPU bound: CPU s of --jobs {jobs} / {cpus} CPUs':<44} | {cpu_bound:>7.1f} | {'':>7} | "
              f"{'':>9} | {cpu_bound / floor:>7.2f}× |")
    if "grade-1" in figures:
        g1 = median(figures["grade-1"], "wall")
        n = len(SUBMISSIONS)
        for key, label in (("grade-1", "grade 10 files --jobs 1"), (f"grade-{jobs}", f"grade 10 files --jobs {jobs}")):
            rows = figures.get(key)
            if not rows:
                continue
            wall = median(rows, "wall")
            print(f"| {label:<44} | {wall:>7.1f} | {median(rows, 'cpu'):>7.1f} | {g1 / wall:>8.2f}× | {'':>8} |")
    if workers and "suite-0" in figures:
        s0 = median(figures["suite-0"], "wall")
        for key, label in (("suite-0", "test suite, one process (-n 0)"), (f"suite-{workers}", f"test suite -n {workers}")):
            rows = figures.get(key)
            if rows:
                wall = median(rows, "wall")
                bad = sum(1 for r in rows if r["exit"] != 0)
                note = f" ({bad} red)" if bad else ""
                print(f"| {label + note:<44} | {wall:>7.1f} | {median(rows, 'cpu'):>7.1f} | {s0 / wall:>8.2f}× | "
                      f"{'':>8} |")
    if "grade-1" in figures:
        print(f"\ngrading: {n} submissions × {len(scenarios)} scenarios ({', '.join(scenarios)}); "
              f"throughput is the inverse of the wall time, so 'vs serial' is the throughput ratio")


if __name__ == "__main__":
    sys.exit(main())
