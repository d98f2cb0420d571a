"""The `lab` command without Docker: parsing, exit codes, listing, narration, and runs on a fake lab."""

from __future__ import annotations

import builtins
import copy
import json
import types
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakes import with_serial_pool
from click.testing import CliRunner

from lab.host import cli

from lab.host import runner_handle

from lab.reports import narrate

from lab.inlab import scenario
from lab.host.engine import EngineError

DATA = Path(__file__).parent / "data"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """No Docker: _with_lab hands the job a placeholder, and the runner answers with saved reports."""
    calls: dict[str, Any] = {"runs": [], "report": sample("refused")}

    def with_lab(opts, ui, job, *, keep=False):  # type: ignore[no-untyped-def]
        return job(object())

    def run_scenario(lab, name, *, impls=None, watchdog=None, timeout=None, pcaps=False,  # type: ignore[no-untyped-def]
                     source=None, on_event=None):
        calls["runs"].append((name, impls, pcaps))
        calls.setdefault("sources", []).append(source)
        calls.setdefault("watchdogs", []).append(watchdog)
        report = copy.deepcopy(calls["report"])
        if on_event is not None:   # a fake stream: the saved run's events, one by one, as the runner tells them
            for event in report["timeline"]:
                on_event(event)
        report["scenario"]["name"] = name
        return report

    monkeypatch.setattr(cli, "_with_lab", with_lab)
    monkeypatch.setattr(cli, "_with_pool", with_serial_pool)
    monkeypatch.setattr(runner_handle, "run_scenario", run_scenario)
    return calls


def test_list_json_has_one_row_per_scenario_with_its_explanation() -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} == set(scenario.discover())
    for row in rows:
        assert {"name", "title", "howto", "path", "explanation", "wire", "injection", "remember", "expect",
                "file"} <= set(row)
        assert Path(row["file"]).parent == scenario.scenarios_dir()
        assert row["howto"] in scenario.HOWTO_SECTIONS
        assert row["path"] in scenario.PATHS
        assert row["explanation"] and "\n" not in row["explanation"]


def test_list_plain_is_a_table_without_escape_codes() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    assert "\x1b[" not in result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("refused "))
    assert "Creating a Socket" in line and "direct" in line and "RST" in line


def test_unknown_scenario_exits_2_listing_the_known_ones() -> None:
    result = invoke("run", "no-such-thing")
    assert result.exit_code == 2
    assert "no scenario named 'no-such-thing'" in result.stderr
    assert "frozen-process" in result.stderr and "refused" in result.stderr


def test_an_implementation_the_scenario_does_not_judge_exits_2() -> None:
    result = invoke("run", "refused", "--impl", "bogus")
    assert result.exit_code == 2
    assert "it judges: robust, naive" in result.stderr


def test_impl_path_that_is_not_a_python_file_exits_2(tmp_path: Path) -> None:
    result = invoke("run", "refused", "--impl", str(tmp_path / "missing.py"))
    assert result.exit_code == 2
    assert "no such file (give a built-in implementation's name, or the path to a .py file" in result.stderr


def test_a_name_and_all_together_exit_2() -> None:
    assert invoke("run", "refused", "--all").exit_code == 2


def test_grade_with_an_unknown_scenario_exits_2_before_any_lab(tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text("pass\n")
    result = invoke("grade", str(mine), "--scenario", "nope")
    assert result.exit_code == 2
    assert "known scenarios" in result.stderr


def test_bad_project_name_and_unknown_command_exit_2() -> None:
    assert cli.main(["--project", "Bad!", "list"]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["list", "--json"]) == 0


def test_docker_setup_failure_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(opts, ui):  # type: ignore[no-untyped-def]
        raise EngineError("no Docker here; install it")

    monkeypatch.setattr(cli, "_engine", broken)
    result = invoke("run", "refused")
    assert result.exit_code == 3
    assert "no Docker here" in result.stderr


def test_narration_tells_the_scenario_from_its_own_fields() -> None:
    chosen = scenario.get("frozen-process")
    steps = narrate.narrate(chosen.summary(), watchdog=12.0)
    text = "\n".join(f"{s.title}\n{s.text}" for s in steps)
    assert "When Sockets Die" in text
    assert narrate.plain_words(chosen.injection) in text   # the scenario's words, its jargon said plainly
    assert narrate.plain_words(chosen.wire) in text
    assert "robust raises PeerUnresponsive within 4 s of the fault" in text
    assert "detected_by = heartbeat" in text
    assert "naive stays blocked inside a call until the watchdog (12 s)" in text
    assert [s.title[:2] for s in steps] == ["1.", "2.", "3.", "4."]
    look_for = chosen.summary().get("look_for")
    if look_for:   # optional in a scenario file
        assert f"In the packets, look for: {' '.join(look_for.split())}" in steps[2].text


def test_remember_gives_the_lesson_and_one_sentence_per_verdict() -> None:
    report = sample("frozen_process")
    lines = narrate.remember(report)
    assert lines[0] == f"Remember: {report['scenario']['remember']}"
    assert lines[1].startswith("robust raised PeerUnresponsive") and lines[1].endswith("(PASS).")
    assert lines[2].startswith("naive was still stuck inside a call") and lines[2].endswith("(PASS).")
    failing = copy.deepcopy(report)
    failing["verdicts"]["robust"]["ok"] = False
    failing["verdicts"]["robust"]["checks"][2]["ok"] = False
    assert "NOT what it should do (FAIL: time bound)" in narrate.remember(failing)[1]


def _forbid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocked(*_args: Any) -> str:
        raise AssertionError("demo waited for Enter")

    monkeypatch.setattr(builtins, "input", blocked)


@pytest.mark.parametrize("flags", [(), ("--no-pause",)])
def test_demo_without_a_terminal_never_waits(fake_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path, flags: tuple[str, ...]) -> None:
    _forbid_input(monkeypatch)
    fake_lab["report"] = sample("frozen_process")
    result = invoke("demo", "frozen-process", *flags, "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "What to remember" in result.stdout
    assert "Remember: A frozen peer's kernel still ACKs" in result.stdout
    assert "BLOCKED at the watchdog" in result.stdout   # the timeline as it happened
    assert (tmp_path / "timeline.svg").exists()


def test_demo_no_pause_wins_over_a_terminal(fake_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    _forbid_input(monkeypatch)
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    monkeypatch.setattr(cli.Ui, "__init__", _plain_ui)
    assert invoke("demo", "refused", "--no-pause", "--results", str(tmp_path)).exit_code == 0


def test_demo_on_a_terminal_waits_for_enter_between_steps(fake_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    prompts: list[str] = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": prompts.append(prompt) or "")
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    monkeypatch.setattr(cli.Ui, "__init__", _plain_ui)
    assert invoke("demo", "refused", "--results", str(tmp_path)).exit_code == 0
    assert len(prompts) == 6   # after each of the 4 told steps, after the run, after the timeline


def _plain_ui(self: cli.Ui, *, json_output: bool = False) -> None:
    self.fancy, self.out, self.err = False, None, None


def test_run_keeps_the_evidence_and_prints_json_without_the_raw_pcaps(fake_lab: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    result = invoke("run", "refused", "--json", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["results"] == str(tmp_path) and "pcaps" not in report
    assert fake_lab["runs"] == [("refused", None, True)]
    for name in ("report.json", "timeline.svg", "report.html", "report.md", "server.pcap", "capture.txt"):
        assert (tmp_path / name).is_file(), name


def test_run_without_a_name_runs_frozen_process(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    fake_lab["report"] = sample("frozen_process")
    result = invoke("run", "--results", str(tmp_path))
    assert result.exit_code == 0
    assert fake_lab["runs"][0][0] == "frozen-process"
    assert "verdict: PASS" in result.stdout


def test_a_failed_oracle_exits_1(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    report = sample("refused")
    report["ok"] = False
    report["verdicts"]["naive"]["ok"] = False
    fake_lab["report"] = report
    result = invoke("run", "refused", "--results", str(tmp_path))
    assert result.exit_code == 1
    assert "verdict: FAIL" in result.stdout


def test_run_all_prints_a_matrix_and_exits_1_when_a_cell_failed(fake_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    passing, failing = sample("refused"), sample("refused")
    failing["ok"] = False
    failing["verdicts"]["naive"]["ok"] = False
    failing["verdicts"]["naive"]["checks"][0]["ok"] = False   # the outcome: it completed instead
    failing["verdicts"]["naive"]["outcome"].update(status="completed", error=None)

    def run_scenario(lab, name, *, impls=None, watchdog=None, timeout=None, pcaps=False,  # type: ignore[no-untyped-def]
                     source=None):
        report = copy.deepcopy(failing if name == "reset" else passing)
        report["scenario"]["name"] = name
        return report

    monkeypatch.setattr(runner_handle, "run_scenario", run_scenario)
    result = invoke("run", "--all", "--results", str(tmp_path))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["scenario", "robust", "naive", "fault", "proven"]
    assert _columns(next(line for line in lines if line.startswith("reset "))) == [
        "reset", "ConnectRefused (as expected)", "FAIL: completed, expected ConnectionRefusedError", "proven"]
    assert _columns(next(line for line in lines if line.startswith("refused "))) == [
        "refused", "ConnectRefused (as expected)", "ConnectionRefusedError (as expected)", "proven"]
    assert (tmp_path / "matrix.json").is_file() and (tmp_path / "reset" / "timeline.svg").is_file()


def _columns(line: str) -> list[str]:
    """A plain matrix line's columns: they are two or more spaces apart (a cell has single spaces)."""
    import re

    return re.split(r"\s{2,}", line.strip())


@pytest.mark.parametrize(("verdict", "code"), [("passed", 0), ("failed", 1), ("invalid", 2)])
def test_a_report_card_sets_the_exit_code(verdict: str, code: int) -> None:
    from types import SimpleNamespace

    from lab.host.cli import _card_exit

    assert _card_exit(SimpleNamespace(verdict=verdict)) == code


# --------------------------------------------------------------------------- grading: before Docker is touched

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way to Docker raises (and is recorded): the engine, the lab, the runner, grading in the lab."""
    from lab.grading import card as grading
    from lab.host import engine, topology

    touched: list[str] = []

    def forbidden(what: str):  # type: ignore[no-untyped-def]
        def call(*_args: Any, **_kwargs: Any) -> Any:
            touched.append(what)
            raise AssertionError(f"{what} was called")
        return call

    from lab.grading import batch

    for owner, name in [(cli, "_engine"), (cli, "_with_lab"), (cli, "_with_pool"), (batch, "grade_all"), (cli, "Lab"), (engine, "prepare"), (engine, "Runner"),
                        (topology, "Lab"), (runner_handle, "run_scenario"), (grading, "run_scenario"),
                        (grading, "grade")]:
        monkeypatch.setattr(owner, name, forbidden(f"{getattr(owner, '__name__', owner)}.{name}"))
    return touched


@pytest.mark.parametrize("command", [("grade",), ("run", "frozen-process", "--impl")])
def test_an_invalid_file_gets_its_card_without_docker(no_docker: list[str], tmp_path: Path,
                                                      command: tuple[str, ...]) -> None:
    result = invoke(*command, str(EXAMPLES / "syntax_error.py"), "--results", str(tmp_path))
    assert no_docker == []
    assert result.exit_code == 2, result.output
    assert "INVALID: syntax_error.py: syntax error at line 16: expected ':'" in result.stdout
    assert "nothing was sent to the lab" in result.stdout
    card = json.loads((tmp_path / "card.json").read_text())
    assert (card["verdict"], card["reason"]) == ("invalid", "syntax_error.py: syntax error at line 16: expected ':'")


def test_an_invalid_file_as_json_without_docker(no_docker: list[str], tmp_path: Path) -> None:
    result = invoke("grade", str(EXAMPLES / "missing_myreceive.py"), "--json", "--results", str(tmp_path))
    assert no_docker == [] and result.exit_code == 2
    card = json.loads(result.stdout)
    assert card["verdict"] == "invalid" and card["valid"] is False and card["results"] == []
    assert card["reason"].startswith("missing_myreceive.py: MySocket has no method myreceive(self)")


def test_a_scenario_that_cannot_grade_is_refused_without_docker(no_docker: list[str]) -> None:
    result = invoke("run", "half-close", "--impl", str(EXAMPLES / "careful.py"))
    assert no_docker == [] and result.exit_code == 2
    assert "scenario 'half-close' judges only robust" in result.stderr


def test_only_the_files_that_pass_the_static_check_start_the_lab(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from lab.grading import card as grading

    from lab.grading import batch

    graded: list[str] = []

    def with_pool(opts, ui, jobs, job, *, keep=False):  # type: ignore[no-untyped-def]
        graded.append(f"{jobs} lab up")
        return job(object())

    def grade_all(pool, paths, *, scenarios=None, **_kw):  # type: ignore[no-untyped-def]
        graded.extend(Path(path).name for path in paths)
        return [grading.ReportCard(submission=str(path), impl="sandbox:x",
                                   results=[grading.ScenarioResult("clean-close", "t", "survived", "ok", "careful")])
                for path in paths]

    monkeypatch.setattr(cli, "_with_pool", with_pool)
    monkeypatch.setattr(batch, "grade_all", grade_all)
    result = invoke("run", "clean-close", "--impl", str(EXAMPLES / "syntax_error.py"), "--impl",
                    str(EXAMPLES / "careful.py"), "--results", str(tmp_path))
    assert graded == ["1 lab up", "careful.py"]   # one file in one scenario: one lab is enough
    assert result.exit_code == 2   # the worst card decides: one invalid file
    assert f"{EXAMPLES / 'syntax_error.py'}: INVALID: syntax_error.py: syntax error at line 16" in result.stdout
    assert f"{EXAMPLES / 'careful.py'}: PASSED, 1 of 1 scenarios handled correctly" in result.stdout
    assert json.loads((tmp_path / "syntax_error" / "card.json").read_text())["verdict"] == "invalid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["careful", "summary.csv", "summary.html", "summary.md",
                                                          "syntax_error"]
    assert json.loads((tmp_path / "careful" / "card.json").read_text())["verdict"] == "passed"


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp, "a folder with no files to grade; put each submission in it as a .py file with MySocket or "
                      "an executable"),
    (lambda tmp: tmp / "missing.py", "no such file or folder"),
])
def test_grade_says_what_is_wrong_with_the_path(no_docker: list[str], tmp_path: Path, make: Any,
                                                message: str) -> None:
    path = make(tmp_path)
    result = invoke("grade", str(path))
    assert no_docker == [] and result.exit_code == 2
    assert f"lab: error: {path}: {message}" in result.stderr
    assert "--impl" not in result.output


def test_grade_of_a_file_that_is_neither_python_nor_executable_gets_its_invalid_card(no_docker: list[str],
                                                                                      tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("FRAMING = 'fixed'\n")
    result = invoke("grade", str(path), "--results", str(tmp_path / "card"))
    assert no_docker == [] and result.exit_code == 2
    assert f"INVALID: {path}: not executable (chmod +x it), or pass a .py file with MySocket" in result.stdout


def test_an_unknown_lab_images_value_is_bad_input_not_a_setup_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.host import engine
    from tests.support.fakes import FakeRunner

    runner = FakeRunner()
    monkeypatch.setattr(engine, "Runner", lambda: runner)
    monkeypatch.setenv("LAB_IMAGES", "bogus")
    result = invoke("up")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == ("lab: error: LAB_IMAGES='bogus' is not a mode; accepted: "
                                                      "auto, official, local (or leave it unset for auto)")
    assert runner.calls == []


# --------------------------------------------------------------------------- signals: unwind, clean up, exit 130

@pytest.fixture
def own_signal_handlers() -> Any:
    """The handlers main() installs are put back afterwards (monkeypatch knows nothing of signal.signal)."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in cli.UNWINDING_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_main_makes_the_signal_unwind_like_ctrl_c(own_signal_handlers: None, name: str) -> None:
    import signal

    sig = signal.Signals[name]
    signal.signal(sig, signal.SIG_DFL)
    cli.install_signal_handlers()
    assert signal.getsignal(sig) is cli._terminated
    with pytest.raises(KeyboardInterrupt, match=f"signal {name}"):
        cli._terminated(sig, None)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_during_run_removes_the_lab_it_started_and_exits_130(
        own_signal_handlers: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], name: str) -> None:
    import os
    import signal
    import time

    done: list[str] = []

    class FakeLab:
        def __init__(self, repo: Path, project: str) -> None:
            done.append(f"lab {project}")

        def status(self) -> list[dict[str, object]]:
            return []   # not up: this command starts it, so it must remove it

        def up(self) -> None:
            done.append("up")

        def down(self) -> None:
            done.append("down")

    def run_scenario(lab, name_, **_kwargs):  # type: ignore[no-untyped-def]
        done.append(f"running {name_}")
        os.kill(os.getpid(), signal.Signals[name])   # as from a closed terminal, a `kill`
        time.sleep(3)   # the handler's KeyboardInterrupt ends this at once
        raise AssertionError(f"{name} did not interrupt the run")

    # Ignored until main() says otherwise, so only main's own handler can interrupt the run (the
    # test session's, from tests/conftest.py, would too).
    signal.signal(signal.Signals[name], signal.SIG_IGN)
    monkeypatch.setattr(cli, "_engine", lambda opts, ui: None)
    monkeypatch.setattr(cli, "Lab", FakeLab)
    monkeypatch.setattr(runner_handle, "run_scenario", run_scenario)
    code = cli.main(["--project", "sig-test", "run", "refused", "--results", str(tmp_path)])
    assert code == 130
    assert done == ["lab sig-test", "up", "running refused", "down"]
    assert capsys.readouterr().err.splitlines()[-2:] == ["lab: lab removed (use --keep to leave it running)",
                                                        "lab: interrupted"]


# --------------------------------------------------------------------------- --project, before or after the command

@pytest.fixture
def down_lab(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """cli.Lab replaced: records the project each Lab is made for; ``found`` is what resources() answers."""
    seen: dict[str, Any] = {"projects": [], "downs": 0,
                            "found": {"containers": ["x-client-1"], "networks": ["x_lab"], "volumes": []}}

    class FakeLab:
        def __init__(self, repo: Path, project: str) -> None:
            seen["projects"].append(project)

        def resources(self) -> dict[str, list[str]]:
            return seen["found"]

        def down(self) -> None:
            seen["downs"] += 1

    monkeypatch.setattr(cli, "Lab", FakeLab)
    return seen


@pytest.mark.parametrize("argv", [["--project", "x", "down"], ["down", "--project", "x"],
                                  ["--project", "x", "down", "--project", "x"]])
def test_project_is_taken_before_or_after_the_command(down_lab: dict[str, Any], argv: list[str]) -> None:
    result = invoke(*argv)
    assert result.exit_code == 0, result.output
    assert down_lab["projects"] == ["x"] and down_lab["downs"] == 1
    assert result.stderr.splitlines() == ["lab: removing the lab", "lab: lab 'x' removed: 1 containers, 1 networks, "
                                          "0 volumes"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_run_takes_the_project_before_or_after_the_command(fake_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, where: str) -> None:
    projects: list[str] = []
    monkeypatch.setattr(cli, "_with_lab", lambda opts, ui, job, keep=False: projects.append(opts.project) or
                        job(object()))
    argv = ["run", "--project", "x", "frozen-process"] if where == "after" else ["--project", "x", "run",
                                                                                  "frozen-process"]
    assert invoke(*argv, "--results", str(tmp_path)).exit_code == 0
    assert projects == ["x"]


def test_without_project_the_default_is_used(down_lab: dict[str, Any]) -> None:
    assert invoke("down").exit_code == 0
    assert down_lab["projects"] == ["socket-lab"]


def test_two_different_projects_exit_2_naming_both(down_lab: dict[str, Any]) -> None:
    result = invoke("--project", "x", "down", "--project", "y")
    assert result.exit_code == 2
    assert ("Invalid value for '--project': given twice with different values: 'x' before the command and 'y' "
            "after it; give one project name") in result.stderr
    assert down_lab["projects"] == []


def test_a_bad_project_name_after_the_command_exits_2(down_lab: dict[str, Any]) -> None:
    assert cli.main(["down", "--project", "Bad!"]) == 2
    assert down_lab["projects"] == []


@pytest.mark.parametrize("command", ["up", "down", "status", "smoke", "selftest", "run", "grade", "demo"])
def test_every_command_that_uses_the_project_takes_it_after_itself(command: str) -> None:
    assert "--project" in [opt for p in cli.cli.commands[command].params for opt in p.opts]


def test_down_of_a_project_with_nothing_says_so(down_lab: dict[str, Any]) -> None:
    down_lab["found"] = {"containers": [], "networks": [], "volumes": []}
    result = invoke("--project", "nosuch", "down")
    assert result.exit_code == 0
    assert result.stderr.strip() == ("lab: nothing to remove for project nosuch (it has no containers, networks or "
                                     "volumes)")
    assert "removed" not in result.stderr


def test_lab_resources_are_everything_of_the_project_labelled_or_not(tmp_path: Path) -> None:
    from lab.host.engine import Result
    from lab.host.topology import Lab
    from tests.support.fakes import FakeRunner

    runner = FakeRunner({("docker", "ps"): Result(0, "p-client-1\n"), ("docker", "network"): Result(0, "p_lab\n"),
                         ("docker", "volume"): Result(0, "")})
    assert Lab(tmp_path, project="p", runner=runner).resources() == {
        "containers": ["p-client-1"], "networks": ["p_lab"], "volumes": []}
    assert [call[-2:] for call in runner.calls] == [("--filter", "label=com.docker.compose.project=p")] * 3


# --------------------------------------------------------------------------- a broken scenario file

GOOD_SCENARIO = '''
from lab.inlab.scenario import Expect
NAME = "{name}"
TITLE = "A title"
HOWTO = "When Sockets Die"
WIRE = "What happens on the wire."
INJECTION = "How the lab does it."
PATH = "direct"
EXPECT = {{"robust": Expect("error", ("ConnectRefused",)), "naive": Expect("error", ("ConnectionRefusedError",))}}
REMEMBER = "One line."
def run(ctx):
    pass
'''


@pytest.fixture
def scenarios_with_a_broken_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A scenarios folder with two good files and one whose import raises; the lab looks there."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("alpha", "omega"):
        (folder / f"{name}.py").write_text(GOOD_SCENARIO.format(name=name))
    (folder / "broken.py").write_text('NAME = "broken"\nraise ValueError("half-written")\n')
    monkeypatch.setattr(scenario, "scenarios_dir", lambda: folder)
    return folder


def test_list_shows_the_broken_file_among_the_others_and_exits_2(scenarios_with_a_broken_one: Path) -> None:
    result = invoke("list")
    assert result.exit_code == 2
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["alpha", "When"], ["omega", "When"], ["broken", "BROKEN:"]]
    broken = scenarios_with_a_broken_one / "broken.py"
    assert result.stderr == f"lab: error: {broken}: importing it raised ValueError: half-written (line 2)\n"


def test_list_json_has_a_row_for_the_broken_file(scenarios_with_a_broken_one: Path) -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 2
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["alpha", "omega", "broken"]
    assert rows[2] == {"name": "broken", "broken": f"{scenarios_with_a_broken_one / 'broken.py'}: importing it "
                                                   "raised ValueError: half-written (line 2)"}


def test_run_of_the_broken_scenario_exits_2_in_one_line(scenarios_with_a_broken_one: Path,
                                                        no_docker: list[str]) -> None:
    result = invoke("run", "broken")
    assert result.exit_code == 2 and no_docker == []
    assert result.stderr == (f"lab: error: {scenarios_with_a_broken_one / 'broken.py'}: importing it raised "
                             "ValueError: half-written (line 2)\n")


def test_run_all_runs_the_others_and_reports_the_broken_one(scenarios_with_a_broken_one: Path,
                                                            fake_lab: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("run", "--all", "--results", str(tmp_path / "results"))
    assert result.exit_code == 2, result.output
    assert [run[0] for run in fake_lab["runs"]] == ["alpha", "omega"]
    lines = result.stdout.splitlines()
    assert _columns(next(line for line in lines if line.startswith("broken "))) == ["broken", "—", "—", "BROKEN"]
    assert f"broken: {scenarios_with_a_broken_one / 'broken.py'}: importing it raised ValueError" in result.stdout
    assert "2 of 3 scenarios passed" in result.stdout
    assert result.stderr.splitlines()[-1].startswith("lab: error: ")
    matrix = json.loads((tmp_path / "results" / "matrix.json").read_text())
    assert [(row["scenario"], row["ok"], row["fidelity"]) for row in matrix["rows"]] == [
        ("alpha", True, "proven"), ("omega", True, "proven"), ("broken", False, "BROKEN")]


# --------------------------------------------------------------------------- a scenario file given by path

def test_run_of_a_scenario_file_by_path_hands_its_text_to_the_runner(fake_lab: dict[str, Any], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "elsewhere" / "my_case.py"
    mine.parent.mkdir()
    mine.write_text(GOOD_SCENARIO.format(name="my-case"))
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "elsewhere/my_case.py", "--results", str(tmp_path / "results"))
    assert result.exit_code == 0, result.output
    assert fake_lab["runs"] == [("my-case", None, True)]
    assert fake_lab["sources"] == [mine.read_bytes()]
    assert "lab: running my-case: A title (from elsewhere/my_case.py)" in result.stderr


def test_run_by_name_hands_no_text_over(fake_lab: dict[str, Any], tmp_path: Path) -> None:
    assert invoke("run", "refused", "--results", str(tmp_path)).exit_code == 0
    assert fake_lab["sources"] == [None]


@pytest.mark.parametrize("given", ["nowhere/my_case.py", "my_case.py"])
def test_a_scenario_path_that_does_not_exist_exits_2_naming_it(no_docker: list[str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("run", given)
    assert result.exit_code == 2 and no_docker == []
    assert result.stderr == (f"lab: error: {given}: no such scenario file (a NAME with '/' or ending in .py is a "
                             "path to a scenario file; without, it is one of `lab list`)\n")


def test_a_broken_scenario_file_by_path_exits_2_before_any_lab(no_docker: list[str], tmp_path: Path) -> None:
    mine = tmp_path / "my_case.py"
    mine.write_text('NAME = "my-case"\n1 / 0\n')
    result = invoke("run", str(mine))
    assert result.exit_code == 2 and no_docker == []
    assert result.stderr == f"lab: error: {mine}: importing it raised ZeroDivisionError: division by zero (line 2)\n"


def test_the_host_sends_the_file_on_stdin_with_source_dash(tmp_path: Path) -> None:
    from lab.host.engine import Result
    from lab.host.topology import Lab
    from tests.support.fakes import FakeRunner

    class StdinRunner(FakeRunner):
        def run(self, argv, *, timeout, env=None, stdin=None, cwd=None):  # type: ignore[no-untyped-def]
            self.stdins.append(stdin)
            return super().run(argv, timeout=timeout, env=env, stdin=stdin, cwd=cwd)

    report = (DATA / "refused_report.json").read_text().replace("\n", " ")
    runner = StdinRunner({("docker", "compose"): Result(0, report + "\n")})
    runner.stdins = []
    lab = Lab(tmp_path, project="p", runner=runner)
    runner_handle.run_scenario(lab, "my-case", source=b"NAME = 'my-case'\n")
    assert runner.calls[-1][len(lab.compose_argv()):] == (
        "exec", "-T", "client", "python3", "-m", "lab.inlab.runner", "run", "my-case", "--json", "--source", "-")
    assert runner.stdins == [b"NAME = 'my-case'\n"]


def test_grade_takes_a_folder_as_a_class_and_grades_it_on_the_labs_asked_for(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    from lab.grading import batch
    from lab.grading import card as grading

    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("b.py", "a.py", ".hidden.py"):
        (folder / name).write_text((EXAMPLES / "careful.py").read_text())
    (folder / "sub").mkdir()
    asked: dict[str, Any] = {}

    def with_pool(opts, ui, jobs, job, *, keep=False):  # type: ignore[no-untyped-def]
        asked["jobs"] = jobs
        return job(object())

    def grade_all(pool, paths, *, scenarios=None, **_kw):  # type: ignore[no-untyped-def]
        asked["paths"] = [Path(p).name for p in paths]
        return [grading.ReportCard(submission=str(p), impl="sandbox:x", results=[
            grading.ScenarioResult("clean-close", "t", "survived", "ok", "careful"),
            grading.ScenarioResult("refused", "t", "hung", "no", "careful")]) for p in paths]

    monkeypatch.setattr(cli, "_with_pool", with_pool)
    monkeypatch.setattr(batch, "grade_all", grade_all)
    out = tmp_path / "out"
    result = invoke("grade", str(folder), "--jobs", "3", "--scenario", "clean-close", "--scenario", "refused",
                    "--results", str(out))
    assert result.exit_code == 1, result.output          # every card failed one scenario
    assert asked == {"jobs": 3, "paths": ["a.py", "b.py"]}
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "summary.csv", "summary.html", "summary.md"]
    assert (out / "summary.csv").read_text().splitlines()[0] == \
        "submission,verdict,good,graded,clean-close,refused,reason"
    assert f"{folder / 'a.py'}: FAILED, 1 of 2 scenarios handled correctly" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("grade", "EX", "--jobs", "0"), "--jobs 0: give a number of labs from 1 to 16 (each lab is 9 containers)"),
    (("run", "--all", "--shard", "3/2"), "--shard 3/2"),
    (("run", "clean-close", "--shard", "1/2"), "--jobs and --shard go with --all"),
    (("run", "clean-close", "--jobs", "2"), "--jobs and --shard go with --all"),
    (("grade", "EX", "EX"), "given twice: "),
])
def test_bad_jobs_and_shards_are_refused_before_anything_starts(no_docker: list[str], args: tuple[str, ...],
                                                                message: str) -> None:
    argv = [str(EXAMPLES / "careful.py") if a == "EX" else a for a in args]
    result = invoke(*argv)
    assert no_docker == [] and result.exit_code == 2, result.output
    assert message in result.stderr


def test_run_all_with_a_shard_runs_only_that_shards_scenarios(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from lab.host import costs, runner_handle, shards
    from lab.inlab import scenario

    ran: list[str] = []

    class Pool:
        def map(self, items, work, *, cost=None, done=None):  # type: ignore[no-untyped-def]
            lab = types.SimpleNamespace(project="p")
            return {item: work(lab, item) for item in items}

    def run_one(lab, name, impls, folder, **_kw):  # type: ignore[no-untyped-def]
        ran.append(name)
        return {"ok": True, "scenario": {"name": name}, "verdicts": {}, "fidelity": [], "fidelity_ok": True}

    monkeypatch.setattr(cli, "_with_pool", lambda opts, ui, jobs, job, keep=False: job(Pool()))
    monkeypatch.setattr(cli, "_run_one", run_one)
    monkeypatch.setattr(runner_handle, "run_scenario", lambda *a, **k: None)
    names = sorted(scenario.discover())
    for k in (1, 2, 3):
        ran.clear()
        result = invoke("run", "--all", "--shard", f"{k}/3", "--results", str(tmp_path / str(k)))
        assert f"shard {k}/3: {len(ran)} scenarios" in result.stderr, result.output
        assert sorted(ran) == sorted(shards.pick(names, k, 3, weights=costs.SECONDS))
