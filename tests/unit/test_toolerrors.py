"""The tool's own errors: one root, one exit code per class, and a bug is never reported as bad input."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab import toolerrors
from lab.toolerrors import (
    EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_SETUP, EXIT_USAGE, CheckFailed, SetupError,
    ToolError, UsageError,
)
from lab.evidence import CaptureError
from lab.grading.card import GradeError
from lab.grading.static import InvalidSubmission, NotElf
from lab.host import cli, runner_handle
from lab.host.build import BuildError
from lab.host.engine import EngineError, Result
from lab.host.runner_handle import ScenarioInputError
from lab.inlab import runner
from lab.inlab.agent.client import AgentError
from lab.inlab.agent.requests import BadRequest, OpFailed
from lab.inlab.runner import ScenarioAbort
from lab.inlab.scenario import ScenarioError, UnknownScenario
from lab.inlab.submission import SubmissionError, SubmissionLoadFailed
from lab.inlab.toxics import ToxicRejected, ToxiproxyError
from lab.reports import views

ROOT = Path(__file__).resolve().parents[2]

# Every error class of the tool, and the root class it is rebased on.
TOOL_ERRORS = {
    UsageError: [cli.UsageProblem, ScenarioInputError, UnknownScenario, ScenarioError, SubmissionError, BadRequest,
                 InvalidSubmission, NotElf, GradeError, CaptureError],
    SetupError: [EngineError, ScenarioAbort, ToxiproxyError, ToxicRejected, AgentError, OpFailed, BuildError],
    CheckFailed: [SubmissionLoadFailed],
}
# Kept a built-in base too, for callers and tests that catch them as one (multiple inheritance only).
COMPATIBLE = {CaptureError: ValueError}
# Exceptions that are the program's own control flow, never reported: they may keep a built-in base.
CONTROL_FLOW = {"lab/evidence/pcap.py": {"_Skip"}}
BUILTIN_BASES = {"Exception", "BaseException", "ValueError", "LookupError", "RuntimeError", "KeyError", "TypeError",
                 "OSError", "ImportError", "IndexError", "AttributeError"}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


def _raise_in_list(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """``lab list`` calls views.list_rows: make it raise ``exc``."""
    def broken(found, broken_files=None):  # type: ignore[no-untyped-def]
        raise exc

    monkeypatch.setattr(views, "list_rows", broken)


# --------------------------------------------------------------------------- the tree

def test_the_roots_carry_their_exit_codes() -> None:
    assert (UsageError.exit_code, SetupError.exit_code, CheckFailed.exit_code) == (2, 3, 1)
    assert (EXIT_INTERNAL, EXIT_INTERRUPTED) == (70, 130)
    assert len({toolerrors.EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_SETUP, EXIT_INTERNAL, EXIT_INTERRUPTED}) == 6
    for root in (UsageError, SetupError, CheckFailed):
        assert issubclass(root, ToolError) and issubclass(ToolError, Exception)


@pytest.mark.parametrize(("root", "cls"), [(root, cls) for root, classes in TOOL_ERRORS.items() for cls in classes],
                         ids=lambda c: getattr(c, "__name__", str(c)))
def test_each_tool_error_class_is_a_tool_error(root: type[ToolError], cls: type[Exception]) -> None:
    assert issubclass(cls, root) and issubclass(cls, ToolError)
    assert cls.exit_code == root.exit_code
    # Kept apart from the socket error tree, and off the unrelated built-in bases.
    from lab.sockets.errors import LabError
    assert not issubclass(cls, LabError)
    builtin = {ValueError, LookupError, RuntimeError} - {COMPATIBLE.get(cls)}
    assert not issubclass(cls, tuple(builtin))


def test_the_socket_error_tree_is_not_a_tool_error() -> None:
    from lab.sockets.errors import LabError
    assert not issubclass(LabError, ToolError)


def _exception_classes_on_builtin_bases() -> list[str]:
    found = []
    for path in sorted((ROOT / "lab").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("lab/sockets/errors.py", "lab/toolerrors.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if bases <= BUILTIN_BASES and bases and node.name not in CONTROL_FLOW.get(rel, set()):
                found.append(f"{rel}: class {node.name}({', '.join(sorted(bases))})")
    return found


def test_no_error_class_of_the_tool_sits_on_a_built_in_base() -> None:
    assert _exception_classes_on_builtin_bases() == [], "rebase these on a lab.toolerrors class"


def test_the_module_docstring_draws_every_class() -> None:
    doc = toolerrors.__doc__ or ""
    for classes in TOOL_ERRORS.values():
        for cls in classes:
            assert cls.__name__ in doc, cls.__name__


# --------------------------------------------------------------------------- the lab command

def test_a_stray_key_error_in_a_command_is_an_internal_error_not_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    _raise_in_list(monkeypatch, KeyError("explanation"))
    result = invoke("list")
    assert result.exit_code == EXIT_INTERNAL
    assert result.exit_code != EXIT_USAGE
    assert "Traceback (most recent call last)" in result.stderr
    assert "KeyError: 'explanation'" in result.stderr
    assert "in broken" in result.stderr                     # the frame that raised it
    assert "lab: internal error: KeyError" in result.stderr
    assert "bad input" not in result.output.lower()
    assert "lab: error:" not in result.stderr               # how bad input (any ToolError) is reported


@pytest.mark.parametrize("exc", [ValueError("bad value deep inside"), LookupError("nothing found"),
                                 ImportError("no module named nowhere"), RuntimeError("boom")],
                         ids=lambda e: type(e).__name__)
def test_no_catch_all_turns_a_built_in_exception_into_bad_input(monkeypatch: pytest.MonkeyPatch,
                                                                 exc: Exception) -> None:
    _raise_in_list(monkeypatch, exc)
    result = invoke("list")
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" in result.stderr and f"lab: internal error: {type(exc).__name__}" in result.stderr


def test_an_internal_error_through_main_exits_internal(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _raise_in_list(monkeypatch, KeyError("stray"))
    assert cli.main(["list"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'stray'" in err and "bad input" not in err


@pytest.mark.parametrize(("exc", "code"), [
    (UsageError("no such thing; accepted: a, b"), EXIT_USAGE),
    (ScenarioError("broken.py: missing NAME"), EXIT_USAGE),
    (UnknownScenario("no scenario named 'x'"), EXIT_USAGE),
    (SetupError("the lab did not come up"), EXIT_SETUP),
    (EngineError("no Docker here"), EXIT_SETUP),
    (CheckFailed("did not hold"), EXIT_CHECK_FAILED),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_a_tool_error_exits_with_its_class_code_and_its_message(monkeypatch: pytest.MonkeyPatch, exc: ToolError,
                                                                code: int) -> None:
    _raise_in_list(monkeypatch, exc)
    result = invoke("list")
    assert result.exit_code == code
    assert f"lab: error: {exc}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    _raise_in_list(monkeypatch, KeyboardInterrupt())
    result = invoke("list")
    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_click_usage_errors_still_exit_2() -> None:
    assert cli.main(["list", "--no-such-option"]) == EXIT_USAGE
    assert cli.main(["frobnicate"]) == EXIT_USAGE


# --------------------------------------------------------------------------- the runner, in and out of the lab

def test_the_runner_exits_with_the_usage_code_on_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["run", "no-such-scenario"]) == UsageError.exit_code
    assert "no scenario named 'no-such-scenario'" in capsys.readouterr().err


class _FakeLab:
    def __init__(self, result: Result) -> None:
        self.result = result

    def exec(self, service, argv, *, timeout=None, stdin=None):  # type: ignore[no-untyped-def]
        return self.result


def test_the_runners_usage_exit_becomes_a_scenario_input_error() -> None:
    lab = _FakeLab(Result(UsageError.exit_code, "", "lab.inlab.runner: no scenario named 'x'; known scenarios: a"))
    with pytest.raises(ScenarioInputError, match="^no scenario named 'x'; known scenarios: a$") as info:
        runner_handle.run_scenario(lab, "x")  # type: ignore[arg-type]
    assert isinstance(info.value, UsageError) and info.value.exit_code == EXIT_USAGE


def test_a_runner_that_crashed_is_a_setup_error() -> None:
    lab = _FakeLab(Result(EXIT_INTERNAL, "", "Traceback ...\nKeyError: 'x'"))
    with pytest.raises(EngineError, match=f"exit {EXIT_INTERNAL}") as info:
        runner_handle.run_scenario(lab, "x")  # type: ignore[arg-type]
    assert info.value.exit_code == EXIT_SETUP


# --------------------------------------------------------------------------- documented

def test_the_readme_and_the_help_document_every_exit_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = " ".join(text.split("## The lab command", 1)[1].split("\n## ", 1)[0].split())
    for code, words in [(0, "ok"), (1, "an oracle"), (2, "bad input"), (3, "Docker could not be set up"),
                        (EXIT_INTERNAL, "an internal error"), (EXIT_INTERRUPTED, "interrupted")]:
        assert re.search(rf"\b{code} {words}", section), (code, words)
    help_text = " ".join(invoke("--help").output.split())
    assert f"{EXIT_INTERNAL} an internal error" in help_text and f"{EXIT_INTERRUPTED} interrupted" in help_text
