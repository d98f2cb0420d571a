"""The ``lab`` command: bring the lab up and down, and run what happens inside it.

    lab engine           find or provide Docker, Compose v2 and the images (idempotent)
    lab up | down        start the topology (waits for health) / remove it
    lab status           the project's containers and their health
    lab list             the scenarios, with the HOWTO section each illustrates
    lab run [NAME]       up, run a scenario end to end (default: frozen-process), print its
                         timeline and verdict; the lab is taken down again if this started it
    lab smoke            up, check the wiring (echo through Toxiproxy, latency proves the path)
    lab sweep            remove anything labelled as the lab's, from any project

Exit codes: 0 success, 1 the scenario's oracle did not hold, 2 bad input,
3 the Docker set-up failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lab import engine
from lab.topology import DEFAULT_PROJECT, Lab, check_project_name, repo_root, sweep

EXIT_OK, EXIT_ORACLE, EXIT_USAGE, EXIT_ENGINE = 0, 1, 2, 3
DEFAULT_SCENARIO = "frozen-process"


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def cmd_engine(opts: argparse.Namespace) -> int:
    plan = engine.prepare(engine.Runner(), repo=opts.repo, log=_log, python=sys.executable)
    _log(f"engine ready; images: {plan.mode} (base {plan.base_image}, toxiproxy {plan.toxiproxy_image})")
    return EXIT_OK


def _lab(opts: argparse.Namespace) -> Lab:
    return Lab(opts.repo, project=opts.project)


def cmd_up(opts: argparse.Namespace) -> int:
    cmd_engine(opts)
    started = time.monotonic()
    _lab(opts).up()
    _log(f"lab {opts.project!r} is up and healthy ({time.monotonic() - started:.1f} s)")
    return EXIT_OK


def cmd_down(opts: argparse.Namespace) -> int:
    _lab(opts).down()
    _log(f"lab {opts.project!r} removed")
    return EXIT_OK


def cmd_status(opts: argparse.Namespace) -> int:
    rows = _lab(opts).status()
    if not rows:
        print(f"lab {opts.project!r} is not running")
        return EXIT_OK
    for row in rows:
        print(f"{row.get('Service', '?'):<10} {row.get('State', '?'):<10} {row.get('Health', '') or '-':<10} "
              f"{row.get('Name', '')}")
    return EXIT_OK


def cmd_sweep(opts: argparse.Namespace) -> int:
    removed = sweep(engine.Runner())
    _log("removed: " + ", ".join(f"{len(v)} {k}" for k, v in removed.items()))
    return EXIT_OK


def _is_up(lab: Lab) -> bool:
    try:
        return any(row.get("State") == "running" for row in lab.status())
    except engine.EngineError:
        return False


def _with_lab(opts: argparse.Namespace, job):  # type: ignore[no-untyped-def]
    """Bring the lab up if needed, run ``job(lab)``, and take it down again only if we started it."""
    cmd_engine(opts)
    lab = _lab(opts)
    was_up = _is_up(lab)
    started = time.monotonic()
    if not was_up:
        _log(f"bringing the lab up as project {opts.project!r} (the first time builds the images)")
    try:
        lab.up()
        if not was_up:
            _log(f"lab up and healthy in {time.monotonic() - started:.1f} s")
        return job(lab)
    finally:
        if not was_up and not opts.keep:
            lab.down()
            _log("lab removed (use --keep to leave it running)")


def cmd_smoke(opts: argparse.Namespace) -> int:
    from lab import smoke

    report = _with_lab(opts, lambda lab: smoke.run(lab, log=_log))
    print(json.dumps(report, indent=2) if opts.json else smoke.render(report))
    return EXIT_OK if report["ok"] else EXIT_ORACLE


def cmd_list(opts: argparse.Namespace) -> int:
    from lab import scenario

    found = scenario.discover()
    if opts.json:
        print(json.dumps([s.summary() for s in found.values()], indent=2))
        return EXIT_OK
    for s in found.values():
        print(f"{s.name:<24} {s.howto:<20} {s.path:<8} {s.title}")
    return EXIT_OK


def cmd_run(opts: argparse.Namespace) -> int:
    from lab import inlab, runner, scenario

    try:
        chosen = scenario.get(opts.name)
        for impl in opts.impl or []:
            if impl not in chosen.expect:
                raise scenario.ScenarioError(f"scenario {chosen.name} has no oracle for {impl!r}; it judges: "
                                             f"{', '.join(chosen.expect)}")
    except (scenario.UnknownScenario, scenario.ScenarioError) as exc:
        _log(f"error: {exc}")
        return EXIT_USAGE
    _log(f"running {chosen.name}: {chosen.title}")
    report = _with_lab(opts, lambda lab: inlab.run_scenario(lab, chosen.name, impls=opts.impl))
    print(json.dumps(report, indent=2) if opts.json else runner.render(report))
    return EXIT_OK if report["ok"] else EXIT_ORACLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description="The socket failure lab.")
    parser.add_argument("--project", default=DEFAULT_PROJECT, type=_project,
                        help=f"compose project name (default {DEFAULT_PROJECT})")
    parser.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("engine", help="find or provide Docker, Compose v2 and the images").set_defaults(func=cmd_engine)
    sub.add_parser("up", help="start the lab and wait until it is healthy").set_defaults(func=cmd_up)
    sub.add_parser("down", help="remove the lab's containers, networks and volumes").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show the lab's containers").set_defaults(func=cmd_status)
    sub.add_parser("sweep", help="remove everything labelled as the lab's").set_defaults(func=cmd_sweep)
    lst = sub.add_parser("list", help="the scenarios")
    lst.add_argument("--json", action="store_true", help="print them as JSON")
    lst.set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="run one scenario end to end and print its timeline and verdict")
    run.add_argument("name", nargs="?", default=DEFAULT_SCENARIO, help=f"scenario (default {DEFAULT_SCENARIO})")
    run.add_argument("--impl", action="append", help="implementation to run (repeatable; default: all judged)")
    run.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.set_defaults(func=cmd_run)
    smoke = sub.add_parser("smoke", help="check the lab's wiring end to end")
    smoke.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    smoke.add_argument("--json", action="store_true", help="print the report as JSON")
    smoke.set_defaults(func=cmd_smoke)
    return parser


def _project(value: str) -> str:
    try:
        return check_project_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        opts.repo = opts.repo or repo_root()
        return opts.func(opts)
    except engine.EngineError as exc:
        _log(f"error: {exc}")
        return EXIT_ENGINE
    except ValueError as exc:  # bad input that got past argparse (e.g. a toxic the API refused)
        _log(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
