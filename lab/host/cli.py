"""The ``lab`` command: bring the lab up and down, run scenarios, narrate them, grade code.

    lab engine                 find or provide Docker, Compose v2 and the images (idempotent)
    lab up | down              start the topology (waits for health) / remove it
    lab status                 the project's containers and their health
    lab list [--json]          the scenarios: name, HOWTO section, path, what happens
    lab run [NAME]             up, run a scenario end to end (default: frozen-process), print its
                               timeline and verdict, keep the evidence in results/<UTC time>-<name>/;
                               the lab is taken down again if this started it
    lab run path/to/x.py       the same for a scenario file of your own (handed to the lab on stdin)
    lab run --all              every scenario; a scenario × implementation matrix (--jobs N labs side by
                               side, lab.host.pool; --shard K/N one part of a stable split, lab.host.shards)
    lab run NAME --impl F.py   grade your own client code in that scenario (lab.grading.card)
    lab grade F.py             grade your own client code in every scenario (or --scenario ...)
    lab grade DIR --jobs N     grade a class: a card per file and a class summary (lab.grading.batch, summary)
    lab demo NAME              classroom mode: the scenario told step by step, run, and explained
    lab smoke                  up, check the wiring (echo through Toxiproxy, latency proves the path)
    lab sweep                  remove anything labelled as the lab's, from any project

Exit codes: 0 success, 1 an oracle did not hold, 2 bad input, 3 the Docker set-up failed,
70 an internal error (a bug: its traceback is shown), 130 interrupted. They come from the
error classes of lab.toolerrors only: any other exception is an internal error.

Spinners and colours appear only when stdout and stderr are terminals and
--json was not given; anywhere else (CI, pipes) the output is plain text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from lab import toolerrors
from lab.host import engine
from lab.host.pool import running
from lab.host.topology import DEFAULT_PROJECT, Lab, check_project_name, repo_root, sweep
from lab.toolerrors import ToolError, UsageError
from lab.inlab.runreport import RunReport

EXIT_OK, EXIT_ORACLE, EXIT_USAGE, EXIT_ENGINE = (toolerrors.EXIT_OK, toolerrors.EXIT_CHECK_FAILED,
                                                 toolerrors.EXIT_USAGE, toolerrors.EXIT_SETUP)
EXIT_INTERNAL, EXIT_INTERRUPTED = toolerrors.EXIT_INTERNAL, toolerrors.EXIT_INTERRUPTED
DEFAULT_SCENARIO = "frozen-process"
T = TypeVar("T")


class UsageProblem(UsageError):
    """Bad input found after parsing (unknown scenario, implementation, file); exit 2."""


# --------------------------------------------------------------------------- terminal

class Ui:
    """Where messages go: stderr for progress and logs, stdout for results.

    ``fancy`` (rich colours, tables and spinners) only when both streams are terminals
    and the output is not JSON, so logs and pipes never get escape codes.
    """

    def __init__(self, *, json_output: bool = False) -> None:
        out, err = sys.stdout, sys.stderr
        self.fancy = not json_output and _isatty(out) and _isatty(err)
        self.out = Console(file=out, highlight=False) if self.fancy else None
        self.err = Console(file=err, highlight=False, stderr=True) if self.fancy else None
        self.quiet_log: Path | None = None   # set: log lines go to this file, not the terminal (lab demo)

    def log(self, message: str) -> None:
        if self.quiet_log is not None:
            with self.quiet_log.open("a", encoding="utf-8") as log:
                log.write(f"lab: {message}\n")
            return
        if self.err is not None:
            self.err.print(f"[dim]lab:[/] {escape(message)}", highlight=False)
        else:
            click.echo(f"lab: {message}", err=True)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something slow runs (image builds, waiting for health, a scenario)."""
        if self.err is None or self.quiet_log is not None:
            self.log(message)
            yield
            return
        with self.err.status(escape(message), spinner="dots"):
            yield

    def echo(self, text: str) -> None:
        click.echo(text)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- options and errors

@dataclasses.dataclass
class Opts:
    project: str
    repo_override: Path | None
    project_given: bool = False   # --project was on the command line (before the subcommand or after it)

    @functools.cached_property
    def repo(self) -> Path:
        return self.repo_override or repo_root()


def _failed(exc: BaseException) -> int:
    """Say on stderr why a command ended; its exit code.

    A ToolError is expected (bad input, a set-up that failed): its message and its class's
    exit code. Ctrl-C, SIGTERM or SIGHUP: 130. Anything else is a bug of the lab's own, never bad
    input: its traceback, one line saying so, and EXIT_INTERNAL.
    """
    if isinstance(exc, ToolError):
        click.echo(f"lab: error: {exc}", err=True)
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)):
        click.echo("lab: interrupted", err=True)
        return EXIT_INTERRUPTED
    click.echo("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(), err=True)
    click.echo(f"lab: internal error: {type(exc).__name__}: {exc} (a bug in the lab itself; please report it "
               f"with the traceback above; exit {EXIT_INTERNAL})", err=True)
    return EXIT_INTERNAL


def _command(fn: Callable[..., int]) -> Callable[..., None]:
    """Turn a command's return code and its failures into the lab's exit codes (also under CliRunner)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise   # click's own (its usage errors exit 2 with click's message)
        except (Exception, KeyboardInterrupt) as exc:   # a ToolError's exit code; anything else is internal
            code = _failed(exc)
        raise click.exceptions.Exit(code)

    return wrapper


def _project(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_project_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _subcommand_project(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--project`` after the subcommand: the same option as before it, merged into the one Opts."""
    value = _project(ctx, param, value)
    if value is None:
        return
    opts = ctx.find_object(Opts)
    assert opts is not None   # the group's callback made it
    if opts.project_given and opts.project != value:
        raise click.BadParameter(f"given twice with different values: {opts.project!r} before the command and "
                                 f"{value!r} after it; give one project name", ctx=ctx, param=param)
    opts.project, opts.project_given = value, True


def project_option(*, subcommand: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--project NAME``: one definition, taken before the subcommand (``lab --project x down``) or after
    it (``lab down --project x``), since people type both."""
    return click.option("--project", default=None, metavar="NAME", callback=_subcommand_project if subcommand
                        else _project, expose_value=not subcommand,
                        help=f"compose project name (default {DEFAULT_PROJECT}); before or after the command")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@project_option(subcommand=False)
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=None, hidden=True)
@click.pass_context
def cli(ctx: click.Context, project: str | None, repo: Path | None) -> None:
    """The socket failure lab: how TCP conversations die, and what socket code should do about it.

    Exit codes: 0 ok, 1 an oracle failed, 2 bad input, 3 the Docker set-up failed, 70 an internal
    error (a bug; its traceback is shown), 130 interrupted.
    """
    ctx.obj = Opts(project or DEFAULT_PROJECT, repo, project_given=project is not None)


pass_opts = click.make_pass_decorator(Opts)


# --------------------------------------------------------------------------- the lab itself

def _engine(opts: Opts, ui: Ui) -> None:
    with ui.status("checking Docker, Compose v2 and the images"):
        plan = engine.prepare(engine.Runner(), repo=opts.repo, log=ui.log, python=sys.executable)
    ui.log(f"engine ready; images: {plan.mode} (base {plan.base_image}, toxiproxy {plan.toxiproxy_image})")


def _with_lab(opts: Opts, ui: Ui, job: Callable[[Lab], T], *, keep: bool = False) -> T:
    """Bring the lab up if needed, run ``job(lab)``, and take it down again only if we started it."""
    _engine(opts, ui)
    lab = Lab(opts.repo, project=opts.project)
    was_up = running(lab)
    started = time.monotonic()
    try:
        message = ("checking the lab is healthy" if was_up else
                   f"bringing the lab up as project {opts.project!r} (the first time builds the images)")
        with ui.status(message):
            lab.up()
        if not was_up:
            ui.log(f"lab up and healthy in {time.monotonic() - started:.1f} s")
        return job(lab)
    finally:
        if not was_up and not keep:
            with ui.status("removing the lab"):
                lab.down()
            ui.log("lab removed (use --keep to leave it running)")


def _with_pool(opts: Opts, ui: Ui, jobs: int, job: Callable[[Any], T], *, keep: bool = False) -> T:
    """Like :func:`_with_lab`, for ``jobs`` labs side by side (lab.host.pool); ``job(pool)``.

    With one job the pool is the project's own lab, exactly as before. The labs this command
    started are taken down again however it ends (an error, Ctrl-C, SIGTERM or SIGHUP).
    """
    from lab.host.pool import LabPool

    _engine(opts, ui)
    pool = LabPool(opts.repo, opts.project, jobs, keep=keep)
    what = f"{jobs} labs ({', '.join(pool.projects)})" if jobs > 1 else f"the lab as project {opts.project!r}"
    try:
        with ui.status(f"bringing up {what} (the first time builds the images)"):
            pool.up()
        ui.log(f"{what} up and healthy in {pool.up_seconds:.1f} s")
        return job(pool)
    finally:
        if pool.started and not keep:
            with ui.status("removing the labs" if jobs > 1 else "removing the lab"):
                pool.down()
            ui.log(("labs" if jobs > 1 else "lab") + " removed (use --keep to leave them running)")
        elif keep and jobs > 1:
            ui.log(f"left running: {', '.join(pool.projects)} (`lab down --project NAME` removes each)")


@cli.command("engine")
@pass_opts
@_command
def cmd_engine(opts: Opts) -> int:
    """Find or provide Docker, Compose v2 and the images."""
    _engine(opts, Ui())
    return EXIT_OK


@cli.command("up")
@project_option()
@pass_opts
@_command
def cmd_up(opts: Opts) -> int:
    """Start the lab and wait until it is healthy."""
    ui = Ui()
    _engine(opts, ui)
    started = time.monotonic()
    with ui.status("starting the lab and waiting for every healthcheck"):
        Lab(opts.repo, project=opts.project).up()
    ui.log(f"lab {opts.project!r} is up and healthy ({time.monotonic() - started:.1f} s)")
    return EXIT_OK


@cli.command("down")
@project_option()
@pass_opts
@_command
def cmd_down(opts: Opts) -> int:
    """Remove the lab's containers, networks and volumes."""
    ui = Ui()
    lab = Lab(opts.repo, project=opts.project)
    # Asked first, so a mistyped project name is told as such instead of "removed".
    found = lab.resources()
    if not any(found.values()):
        lab.down()   # all the same: idempotent, and quick when there is nothing
        ui.log(f"nothing to remove for project {opts.project} (it has no containers, networks or volumes)")
        return EXIT_OK
    with ui.status("removing the lab"):
        lab.down()
    ui.log(f"lab {opts.project!r} removed: " + ", ".join(f"{len(v)} {k}" for k, v in found.items()))
    return EXIT_OK


@cli.command("status")
@project_option()
@pass_opts
@_command
def cmd_status(opts: Opts) -> int:
    """Show the lab's containers."""
    from lab.reports import views

    ui = Ui()
    rows = Lab(opts.repo, project=opts.project).status()
    if not rows:
        ui.echo(f"lab {opts.project!r} is not running")
    elif ui.out is not None:
        views.print_status(ui.out, rows)
    else:
        for row in rows:
            ui.echo(f"{row.get('Service', '?'):<10} {row.get('State', '?'):<10} {row.get('Health', '') or '-':<10} "
                    f"{row.get('Name', '')}")
    return EXIT_OK


@cli.command("sweep")
@_command
def cmd_sweep() -> int:
    """Remove everything labelled as the lab's, from any project."""
    removed = sweep(engine.Runner())
    Ui().log("removed: " + ", ".join(f"{len(v)} {k}" for k, v in removed.items()))
    return EXIT_OK


@cli.command("smoke")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards")
@click.option("--json", "json_output", is_flag=True, help="print the report as JSON")
@project_option()
@pass_opts
@_command
def cmd_smoke(opts: Opts, keep: bool, json_output: bool) -> int:
    """Check the lab's wiring end to end."""
    from lab.host import smoke

    ui = Ui(json_output=json_output)
    report = _with_lab(opts, ui, lambda lab: smoke.run(lab, log=ui.log), keep=keep)
    ui.echo(json.dumps(report, indent=2) if json_output else smoke.render(report))
    return EXIT_OK if report["ok"] else EXIT_ORACLE


@cli.command("selftest")
@click.option("--fault", "faults", multiple=True, help="only this fault's mutants (repeatable)")
@click.option("--scenario", "scenarios", multiple=True, help="only in this scenario (repeatable)")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards")
@click.option("--json", "json_output", is_flag=True, help="print the rows as JSON")
@project_option()
@pass_opts
@_command
def cmd_selftest(opts: Opts, faults: tuple[str, ...], scenarios: tuple[str, ...], keep: bool,
                 json_output: bool) -> int:
    """The mutation suite: every weakened fault must fail a fidelity proof (exit 1 if one does not)."""
    from lab.host import runner_handle, selftest
    from lab.inlab import mutants, scenario

    found = scenario.discover()
    for name in scenarios:
        scenario.get(name)    # an unknown name is bad input, listing the known ones
    known = {m.fault for m in mutants.CATALOGUE}
    unknown = sorted(set(faults) - known)
    if unknown:
        raise UsageProblem(f"no mutants for fault(s) {', '.join(unknown)}; faults with mutants: "
                           f"{', '.join(sorted(known))}")
    pairs = selftest.plan(found, faults=faults, scenarios=scenarios)
    if not pairs:
        raise UsageProblem("no scenario uses those faults; nothing to run")
    ui = Ui(json_output=json_output)

    def job(lab: Lab) -> list[selftest.Row]:
        def progress(i: int, n: int, mutant: mutants.Mutant, name: str) -> None:
            ui.log(f"[{i}/{n}] {mutant.key} in {name}")

        return selftest.run_suite(lambda name, key: runner_handle.run_scenario(lab, name, mutant=key), pairs,
                                  progress=progress)

    rows = _with_lab(opts, ui, job, keep=keep)
    if json_output:
        ui.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    else:
        ui.echo(selftest.render(rows))
    return EXIT_OK if all(r.ok for r in rows) else EXIT_ORACLE


# --------------------------------------------------------------------------- scenarios

@cli.command("list")
@click.option("--json", "json_output", is_flag=True, help="print them as JSON")
@_command
def cmd_list(json_output: bool) -> int:
    """The scenarios: name, HOWTO section, path and what happens (exit 2 if a scenario file is broken)."""
    from lab.inlab import scenario
    from lab.reports import views

    found, broken = scenario.survey()
    rows = views.list_rows(found, broken)
    ui = Ui(json_output=json_output)
    if json_output:
        ui.echo(json.dumps(rows, indent=2))
    elif ui.out is not None:
        views.print_list(ui.out, rows)
    else:
        ui.echo(views.plain_list(rows))
    return _broken_exit(broken, EXIT_OK)


def _broken_exit(broken: dict[str, Any], code: int) -> int:
    """Each broken scenario file's error on stderr, one line each; exit 2 (bad input) if there is one."""
    for error in broken.values():
        click.echo(f"lab: error: {error}", err=True)
    return max(code, EXIT_USAGE) if broken else code


def _is_path(impl: str) -> bool:
    """``--impl`` takes a built-in implementation's name, or a path to someone's own .py file or program."""
    return impl.endswith(".py") or "/" in impl or "\\" in impl


def _split_impls(impls: tuple[str, ...]) -> tuple[list[str], list[Path]]:
    names, paths = [], []
    for impl in impls:
        if _is_path(impl):
            path = Path(impl)
            if not path.is_file():
                raise UsageProblem(f"--impl {impl}: no such file (give a built-in implementation's name, or the "
                                   "path to a .py file with MySocket or to an executable to grade)")
            paths.append(path.resolve())
        else:
            names.append(impl)
    return names, paths


def _check_impls(chosen: Any, names: list[str]) -> None:
    for impl in names:
        if impl not in chosen.expect:
            raise UsageProblem(f"scenario {chosen.name} has no oracle for {impl!r}; it judges: "
                               f"{', '.join(chosen.expect)}")


def _results_dir(opts: Opts, results: Path | None, label: str) -> Path:
    from lab.reports.results import default_dir

    return results if results is not None else default_dir(opts.repo, label)


def _run_one(lab: Lab, name: str, impls: list[str] | None, folder: Path, *,
             source: bytes | None = None, watchdog: float | None = None,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one scenario in the lab, keep its evidence in ``folder``; the report (pcaps left out).

    ``source``: the text of a scenario file given by path, which the image does not have.
    ``on_event``: told each timeline event while the run goes on.
    """
    from lab.host import runner_handle
    from lab.reports import results

    extra: dict[str, Any] = {}
    if watchdog is not None:
        extra["watchdog"] = watchdog
    if on_event is not None:
        extra["on_event"] = on_event
    report = runner_handle.run_scenario(lab, name, impls=impls or None, pcaps=True, source=source, **extra)
    results.save(report, folder)
    clean, _ = results.split_pcaps(report)
    clean["results"] = str(folder)
    return clean


def _print_report(ui: Ui, report: RunReport, json_output: bool) -> None:
    from lab.inlab import runner
    from lab.reports import views

    if json_output:
        ui.echo(json.dumps(report, indent=2))
    elif ui.out is not None:
        views.print_report(ui.out, report, results=report.get("results"))
    else:
        ui.echo(runner.render(report) + (f"\nresults: {report['results']}" if report.get("results") else ""))


def _choose_scenario(name: str) -> tuple[Any, bytes | None]:
    """A scenario by name (from lab/scenarios/), or by path to its file; the file's bytes when by path.

    A path is anything with a '/' or ending in .py, like ``--impl``'s. The file is checked here,
    on the host, so a broken one is told before the lab starts; the runner gets its bytes.
    """
    from lab.inlab import scenario

    if not _is_path(name):
        return scenario.get(name), None
    path = Path(name)
    if not path.is_file():
        raise UsageProblem(f"{name}: no such scenario file (a NAME with '/' or ending in .py is a path to a "
                           "scenario file; without, it is one of `lab list`)")
    return scenario.load(path), path.read_bytes()


jobs_option = click.option(
    "--jobs", "-j", type=int, default=None, metavar="N",
    help="labs side by side, each running one scenario at a time (default 1; 2 per CPU pays off, but on a "
         "2-CPU machine the CPU load can starve a subject or a capture and fail a tight proof now and then)")


def _jobs(jobs: int | None) -> int:
    from lab.host.pool import check_jobs

    # One by default: a verdict must not depend on how busy the machine is. The time bounds no longer
    # count the lab's own injection time (timeline.bound_start), but on 2 CPUs four labs still starve
    # a subject's thread or a packet handler now and then (measured: 7 of 10 suite runs green at -n 4).
    try:
        return check_jobs(jobs if jobs is not None else 1)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    from lab.host.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc


@cli.command("run")
@click.argument("name", required=False)
@click.option("--all", "run_all", is_flag=True, help="run every scenario and print a matrix")
@click.option("--impl", "impls", multiple=True, metavar="IMPL",
              help="implementation to run (repeatable; default: all judged), or a .py file to grade")
@click.option("--json", "json_output", is_flag=True, help="print the report as JSON")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards")
@click.option("--results", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where to keep the evidence (default results/<UTC time>-<scenario>/)")
@click.option("--web", is_flag=True, help="also show the run live in a browser: a page on 127.0.0.1 (the address "
              "is printed first)")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="with --all: also write the matrix as JUnit XML to FILE (a case per scenario × implementation)")
@jobs_option
@click.option("--shard", "shard_text", default=None, metavar="K/N",
              help="with --all: run only shard K of N (a stable split; the N shards together run every scenario once)")
@project_option()
@pass_opts
@_command
def cmd_run(opts: Opts, name: str | None, run_all: bool, impls: tuple[str, ...], json_output: bool, keep: bool,
            results: Path | None, junit: Path | None, web: bool, jobs: int | None, shard_text: str | None) -> int:
    """Run a scenario end to end (default frozen-process): timeline, verdict and evidence.

    NAME is a scenario of `lab list`, or the path to a scenario file (with a '/' or ending in .py).
    """
    from lab.inlab import scenario

    if run_all and name:
        raise UsageProblem("give a scenario name or --all, not both")
    if web and (run_all or impls):
        raise UsageProblem("--web shows one scenario of the lab's own implementations as it runs; "
                           "give a scenario name without --all or --impl")
    if junit is not None and not run_all:
        raise UsageProblem("--junit FILE goes with --all (one JUnit case per scenario × implementation); "
                           "a single run's verdict is its exit code and report.json")
    if not run_all and (shard_text is not None or (jobs or 1) > 1):
        raise UsageProblem("--jobs and --shard go with --all (or with `lab grade` for several files); "
                           "one scenario runs in one lab")
    shard = _shard(shard_text)
    jobs = _jobs(jobs)
    names, paths = _split_impls(impls)
    ui = Ui(json_output=json_output)
    if run_all:
        found, broken = scenario.survey()
        for impl in names:
            if not any(impl in s.expect for s in found.values()):
                raise UsageProblem(f"no scenario judges implementation {impl!r}")
        if paths:
            if junit is not None:
                raise UsageProblem("--junit FILE is for the lab's own implementations; grading your own code "
                                   "(--impl FILE) writes a report card (card.json) instead")
            if shard is not None:
                raise UsageProblem("--shard K/N splits the lab's own scenarios across machines; grading your "
                                   "own code (--impl FILE) grades it in every scenario")
            return _grade_files(opts, ui, paths, None, json_output, results, keep, jobs=jobs)
        return _run_all(opts, ui, found, broken, names, json_output, results, keep, junit, jobs=jobs, shard=shard)
    chosen, source = _choose_scenario(name or DEFAULT_SCENARIO)
    _check_impls(chosen, names)
    if paths:
        if source is not None:
            raise UsageProblem(f"{name}: grading your own code (--impl FILE) runs in the lab's own scenarios; "
                               "give a scenario's name, or drop --impl FILE to run this scenario file")
        return _grade_files(opts, ui, paths, [chosen.name], json_output, results, keep)
    folder = _results_dir(opts, results, chosen.name)
    ui.log(f"running {chosen.name}: {chosen.title}" + (f" (from {name})" if source is not None else ""))

    with _live(ui, web, folder, chosen) as live:
        def job(lab: Lab) -> dict[str, Any]:
            with ui.status(f"running {chosen.name} ({' and '.join(names or sorted(chosen.expect))} side by side)"):
                return _run_one(lab, chosen.name, names, folder, source=source,
                                on_event=live.event if live is not None else None)

        report = _with_lab(opts, ui, job, keep=keep)
        if live is not None:
            live.end(report)
        _print_report(ui, report, json_output)
        _linger(ui, live)
    return EXIT_OK if report["ok"] else EXIT_ORACLE


@contextlib.contextmanager
def _live(ui: Ui, web: bool, folder: Path, chosen: Any) -> Iterator[Any]:
    """``--web``: the live view for this run, its address said first; None without --web."""
    if not web:
        yield None
        return
    from lab.host.web.session import LiveSession

    folder.mkdir(parents=True, exist_ok=True)
    with LiveSession(folder) as live:
        live.start(chosen)
        ui.echo(f"live view: {live.url}  (open it in a browser on this machine)")
        yield live


def _linger(ui: Ui, live: Any) -> None:
    """At a terminal the page stays up (its links to the evidence work) until Enter."""
    if live is not None and _isatty(sys.stdin):
        try:
            input(f"  the live view stays at {live.url} until you press Enter ")
        except EOFError:
            pass


def _run_all(opts: Opts, ui: Ui, found: dict[str, Any], broken: dict[str, Any], names: list[str],
             json_output: bool, results: Path | None, keep: bool, junit: Path | None = None,
             jobs: int = 1, shard: tuple[int, int] | None = None) -> int:
    from lab.host import costs, runner_handle
    from lab.reports import index, junit as junit_xml, views
    from lab.reports.results import matrix_summary

    base = _results_dir(opts, results, "all")
    seconds: dict[str, float] = {}   # each scenario's run, as the host saw it (the JUnit cases' time)
    if shard is not None:
        from lab.host import shards

        # The same stable assignment on every machine: the shards together run each scenario once.
        mine = set(shards.pick(sorted([*found, *broken]), *shard, weights=costs.SECONDS))
        found = {name: s for name, s in found.items() if name in mine}
        broken = {name: e for name, e in broken.items() if name in mine}
        ui.log(f"shard {shard[0]}/{shard[1]}: {len(found) + len(broken)} scenarios")
    judged = {name: [impl for impl in names if impl in chosen.expect] for name, chosen in found.items()}
    todo = [name for name in found if not names or judged[name]]
    finished = 0
    count_lock = threading.Lock()

    def work(lab: Lab, scenario_name: str) -> RunReport:
        nonlocal finished
        started = time.monotonic()
        try:
            report = _run_one(lab, scenario_name, judged[scenario_name], base / scenario_name)
        except runner_handle.ScenarioInputError as exc:   # one broken scenario must not hide the others
            report = {"error": str(exc), "ok": False}
        seconds[scenario_name] = round(time.monotonic() - started, 3)
        with count_lock:
            finished += 1
            where = f", lab {lab.project}" if jobs > 1 else ""
            ui.log(f"[{finished}/{len(todo)}] {scenario_name}: {'PASS' if report.get('ok') else 'FAIL'} "
                   f"({seconds[scenario_name]:.1f} s{where})")
        return report

    def job(pool: Any) -> dict[str, RunReport]:
        with ui.status(f"running {len(todo)} scenarios" + (f" on {jobs} labs at once" if jobs > 1 else "")):
            return pool.map(todo, work, cost=costs.SECONDS.get)

    reports = _with_pool(opts, ui, jobs, job, keep=keep) if todo else {}   # no lab for nothing but broken files
    # A file that would not load is a row of the matrix too, so the broken one is seen among the others.
    reports.update({name: {"error": str(error), "ok": False, "broken": True} for name, error in broken.items()})
    impls, rows = views.matrix_rows(reports)
    base.mkdir(parents=True, exist_ok=True)
    summary = matrix_summary(impls, rows, base)
    (base / "matrix.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml.render(reports, seconds=seconds), encoding="utf-8")
        ui.log(f"JUnit XML: {junit}")
    (base / "index.html").write_text(index.render_index(impls, summary["rows"], files=_index_files(base, junit)),
                                     encoding="utf-8")
    if json_output:
        ui.echo(json.dumps(summary, indent=2))
        ui.log(f"results: {base}")   # the JSON holds only paths relative to this folder
    elif ui.out is not None:
        views.print_matrix(ui.out, impls, rows)
        ui.out.print(f"[dim]results:[/] {escape(str(base))}")
    else:
        ui.echo(views.plain_matrix(impls, rows) + f"\nresults: {base}")
    return _broken_exit(broken, EXIT_OK if all(row["ok"] for row in rows if row["scenario"] not in broken)
                        else EXIT_ORACLE)


def _index_files(base: Path, junit: Path | None) -> tuple[str, ...]:
    """The folder's own files index.html links: matrix.json, and the JUnit XML when it was written inside."""
    files = ["matrix.json"]
    if junit is not None:
        with contextlib.suppress(ValueError):   # written elsewhere: a link would leave the folder
            files.append(junit.resolve().relative_to(base.resolve()).as_posix())
    return tuple(files)


# --------------------------------------------------------------------------- grading someone's code

def _card_exit(card: Any) -> int:
    """A report card's exit code: passed 0, failed 1, an invalid submission (bad input) 2."""
    return {"passed": EXIT_OK, "invalid": EXIT_USAGE}.get(card.verdict, EXIT_ORACLE)


def _grade_files(opts: Opts, ui: Ui, paths: list[Path], scenarios: list[str] | None, json_output: bool,
                 results: Path | None, keep: bool, *, jobs: int = 1) -> int:
    from lab.grading import batch, card as grading   # imported only when grading is asked for
    from lab.host import costs

    # Everything that needs no lab comes first: the scenarios asked for, then the static check of
    # each file. A file it refuses gets its "invalid" card here; the lab (and Docker) is started
    # only for files that can be graded, and not at all when there are none.
    chosen = grading.choose(scenarios)
    cards: list[Any] = [grading.invalid_card(path) for path in paths]
    todo = [i for i, card in enumerate(cards) if card is None]
    units = len(todo) * len(chosen)
    finished = 0
    lock = threading.Lock()

    def progress(index: int, result: Any) -> None:
        nonlocal finished
        with lock:
            finished += 1
            ui.log(f"[{finished}/{units}] {paths[todo[index]].name} in {result.scenario}: {result.verdict}")

    def job(pool: Any) -> list[Any]:
        with ui.status(f"grading {len(todo)} file{'s' if len(todo) > 1 else ''} in {len(chosen)} scenarios"):
            return batch.grade_all(pool, [paths[i] for i in todo], scenarios=scenarios, cost=costs.SECONDS.get,
                                   progress=progress)

    if todo:
        # No more labs than there are runs to make: one file in one scenario needs one lab.
        for i, card in zip(todo, _with_pool(opts, ui, max(1, min(jobs, units)), job, keep=keep)):
            cards[i] = card
    if len(paths) == 1:
        folder = results or _results_dir(opts, None, f"grade-{paths[0].stem}")
        _write_card(folder, cards[0])
        ui.echo(json.dumps(cards[0].as_dict(), indent=2, default=str) if json_output else grading.render_text(cards[0]))
        ui.log(f"report card kept in {folder}")
        return _card_exit(cards[0])
    return _class_summary(ui, paths, cards, results or _results_dir(opts, None, "grade-class"), json_output)


def _write_card(folder: Path, card: Any) -> None:
    from lab.grading import card as grading

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(card.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(grading.render_markdown(card), encoding="utf-8")


def card_folders(paths: list[Path]) -> list[str]:
    """Each submission's folder name in a class's results: its file's stem, made unique (``a``, ``a-2``)."""
    from lab.host.sandbox import safe_stem

    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = safe_stem(path.stem)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def _class_summary(ui: Ui, paths: list[Path], cards: list[Any], base: Path, json_output: bool) -> int:
    """Several files: a card each in its own folder, and the class summary as Markdown, CSV and HTML."""
    from lab.grading import summary
    from lab.grading.verdicts import GOOD

    folders = card_folders(paths)
    for folder, card in zip(folders, cards):
        _write_card(base / folder, card)
    rows, columns = summary.rows(cards, folders), summary.scenarios(cards)
    (base / "summary.md").write_text(summary.render_markdown(rows, columns), encoding="utf-8")
    (base / "summary.csv").write_text(summary.render_csv(rows, columns), encoding="utf-8")
    (base / "summary.html").write_text(summary.render_html(rows, columns), encoding="utf-8")
    if json_output:
        ui.echo(json.dumps([card.as_dict() for card in cards], indent=2, default=str))
    else:
        for card in cards:
            ui.echo(f"{card.submission}: {card.verdict.upper()}"
                    + (f": {card.reason}" if not card.valid else
                       f", {sum(1 for r in card.results if r.verdict in GOOD)} of "
                       f"{len(card.results)} scenarios handled correctly"))
    ui.log(f"class summary: {base / 'summary.html'} (also summary.md, summary.csv); a card per file in {base}/NAME/")
    return max(_card_exit(card) for card in cards)


@cli.command("grade")
@click.argument("given", nargs=-1, required=True, metavar="FILE_OR_DIR...", type=click.Path(path_type=Path))
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME", help="grade in this scenario (repeatable; "
              "default: every scenario)")
@jobs_option
@click.option("--json", "json_output", is_flag=True, help="print the report card as JSON (several files: a list)")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards")
@click.option("--results", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where to keep the report card (default results/<UTC time>-grade-<file>/; several files: "
                   "results/<UTC time>-grade-class/, a folder per file and the class summary)")
@project_option()
@pass_opts
@_command
def cmd_grade(opts: Opts, given: tuple[Path, ...], scenarios: tuple[str, ...], jobs: int | None, json_output: bool,
              keep: bool, results: Path | None) -> int:
    """Grade client code (a .py file with MySocket, or an executable) in the lab's scenarios.

    Give one file, several, or a folder (a class: each file in it is a submission). Several get
    a report card each and a class summary (summary.md, summary.csv, summary.html).
    """
    from lab.inlab import scenario

    paths = _grade_paths(given)
    for name in scenarios:
        scenario.get(name)   # an unknown name is bad input, listed before the lab starts
    return _grade_files(opts, Ui(json_output=json_output), paths, list(scenarios) or None, json_output, results,
                        keep, jobs=_jobs(jobs))


def _grade_paths(given: tuple[Path, ...]) -> list[Path]:
    """The files to grade: each file given, and each folder's files (sorted; not its hidden ones or subfolders)."""
    paths: list[Path] = []
    for path in given:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise UsageProblem(f"{path}: a folder with no files to grade; put each submission in it as a .py "
                                   "file with MySocket or an executable")
            paths += [p.resolve() for p in inside]
        else:
            paths.append(_grade_path(path))
    twice = sorted({str(p) for p in paths if paths.count(p) > 1})
    if twice:
        raise UsageProblem(f"given twice: {', '.join(twice)}; give each submission once")
    return paths


def _grade_path(path: Path) -> Path:
    """A file ``lab grade`` was given, resolved; or what is wrong with the path (exit 2)."""
    if not path.exists():
        raise UsageProblem(f"{path}: no such file or folder")
    if not path.is_file():
        raise UsageProblem(f"{path}: not a regular file; give .py files with MySocket, executables, or a folder of "
                           "them")
    # What else may be wrong with it (not executable, not a Linux program, a broken .py) is the
    # static check's to say, on the card, before anything starts.
    return path.resolve()


# --------------------------------------------------------------------------- classroom

@cli.command("demo")
@click.argument("name", default=DEFAULT_SCENARIO)
@click.option("--no-pause", is_flag=True, help="do not wait for Enter between steps")
@click.option("--watchdog", type=float, default=None, metavar="S",
              help="seconds before a stuck call counts as blocked (default: the scenario's); shortens the demo, "
                   "but not below the robust client's time bound")
@click.option("--web", is_flag=True, help="also tell it in a browser, live: a page on 127.0.0.1 with a 'next' "
              "button (the address is printed first)")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards")
@click.option("--results", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where to keep the evidence (default results/<UTC time>-<scenario>/)")
@project_option()
@pass_opts
@_command
def cmd_demo(opts: Opts, name: str, no_pause: bool, watchdog: float | None, keep: bool,
             results: Path | None, web: bool) -> int:
    """Classroom mode: a scenario told step by step, run side by side, and explained."""
    from lab.reports import narrate
    from lab.inlab import runner
    from lab.inlab import scenario
    from lab.reports import views

    chosen = scenario.get(name)
    override = _demo_watchdog(chosen, watchdog)
    ui = Ui()
    # Without a terminal on stdin nobody can press Enter: never wait then (CI, pipes, tests).
    pause = not no_pause and _isatty(sys.stdin)
    watchdog = override or chosen.watchdog or runner.DEFAULT_WATCHDOG

    folder = _results_dir(opts, results, chosen.name)
    with _live(ui, web, folder, chosen) as live:
        return _demo(opts, ui, chosen, narrate, views, folder, live, pause, watchdog, override, keep)


def _demo(opts: Opts, ui: Ui, chosen: Any, narrate: Any, views: Any, folder: Path, live: Any, pause: bool,
          watchdog: float, override: float | None, keep: bool) -> int:
    def say(title: str, text: str) -> None:
        if live is not None:
            live.step(title, text, pause=pause)
        if ui.out is not None:
            ui.out.print(f"\n[bold cyan]{escape(title)}[/]")
            ui.out.print(text, markup=False)
        else:
            ui.echo(f"\n{title}\n{text}")

    def wait() -> None:
        nonlocal pause
        if not pause:
            return
        if live is not None:
            # Either the page's "next" button or Enter at the terminal moves the class on.
            ui.echo("  [Enter] or the page's 'next' button: next step")
            _wait_either(live)
            return
        try:
            input("  [Enter] next step ")
        except EOFError:
            pause = False

    for step in narrate.narrate(chosen.summary(), watchdog=watchdog):
        say(step.title, step.text)
        wait()
    say("5. Running it", "Both implementations run at the same time, one thread each, against the same "
        "server; the lab injects the fault once both are ready for it.")
    folder.mkdir(parents=True, exist_ok=True)
    # The engine's and the bring-up's progress lines are not part of the lesson: they go to a
    # file in the evidence folder, and the class sees only the scenario's own events.
    ui.quiet_log = folder / "lab.log"
    events = narrate.LiveEvents()

    def tell(event: dict[str, Any]) -> None:
        if live is not None:
            live.event(event)
        # "wall" is for the live view's lag figure, not for the class.
        for line in events.feed({k: v for k, v in event.items() if k != "wall"}):
            ui.echo(line)

    def job(lab: Lab) -> dict[str, Any]:
        ui.echo("  (the events as they happen; the lab's own log is in lab.log)")
        try:
            return _run_one(lab, chosen.name, None, folder, watchdog=override, on_event=tell)
        finally:
            for line in events.finish():
                ui.echo(line)

    report = _with_lab(opts, ui, job, keep=keep)
    wait()
    say("6. What happened, in order", "")
    if ui.out is not None:
        views.print_timeline(ui.out, report)
    else:
        from lab.inlab import timeline

        for line in timeline.plain_lines(report):   # long runs of identical events folded
            ui.echo(line)
    wait()
    say("What to remember", "\n".join(narrate.remember(report)))
    ui.echo(f"\nevidence (sequence diagram, packets, report): {folder}")
    if live is not None:
        live.end(report)     # the verdicts, proofs and evidence links, last on the page
    _linger(ui, live)
    return EXIT_OK if report["ok"] else EXIT_ORACLE


def _wait_either(live: Any) -> None:
    """Until Enter at the terminal or the page's "next" button, whichever comes first."""
    import select

    while True:
        if live.hub.wait_next(0.2):
            return
        if _isatty(sys.stdin):
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if ready:
                sys.stdin.readline()
                return


def _demo_watchdog(chosen: Any, watchdog: float | None) -> float | None:
    """``lab demo --watchdog S``, checked: not below the robust client's time bound (exit 2).

    A watchdog shorter than robust's bound would call robust "blocked" before it could
    detect the fault, and the lesson (robust finds out, naive stays stuck) would not be seen.
    """
    if watchdog is None:
        return None
    if not watchdog > 0:
        raise UsageProblem(f"--watchdog must be a number of seconds > 0; got {watchdog:g}")
    expect = chosen.expect.get("robust")
    bound = getattr(expect, "within", None)
    if bound is not None and getattr(expect, "status", None) != "blocked" and watchdog < bound:
        raise UsageProblem(f"--watchdog {watchdog:g} is shorter than the robust client's time bound in "
                           f"{chosen.name} ({bound:g} s): robust would be called blocked before it could notice "
                           f"the fault, and the lesson breaks; give --watchdog {bound:g} or more")
    return watchdog


# --------------------------------------------------------------------------- entry point

# SIGTERM: a cancelled job, a `kill`. SIGHUP: the terminal closed, the SSH session dropped.
UNWINDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _terminated(signum: int, _frame: object) -> None:
    # These unwind like Ctrl-C, so a lab this command started is taken down again instead of
    # being left running (Python's default for both is to die at once, skipping every `finally`).
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """Make :data:`UNWINDING_SIGNALS` raise KeyboardInterrupt (exit 130 after the clean-up)."""
    if threading.current_thread() is threading.main_thread():   # signal.signal works only there
        for sig in UNWINDING_SIGNALS:
            signal.signal(sig, _terminated)


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    try:
        result = cli.main(args=argv, prog_name="lab", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:   # usage errors: exit 2, with click's message
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("lab: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:   # raised outside a command (the group, a callback): the same rules
        return _failed(exc)
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
