"""The host's sandbox context manager on a scripted runner: exact docker argv, and cleanup whatever happens.

Also the two small changes it needed in lab.host.topology: ``Lab.down`` removes a left-behind
``compose run`` container first, and ``Lab.sick`` does not count one as a sick service.
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from lab.host.engine import EngineError, Result
from lab.host.sandbox import Sandbox, safe_stem
from lab.host.topology import SERVICES, Lab
from tests.support.fakes import FakeRunner

LISTENING = Result(0, "", "launcher: listening on 127.0.0.1:7900\n")
NOT_YET = Result(0, "", "")
GONE = Result(1, "", "Error: No such container: x\n")


def make_lab(tmp_path: Path, answers: dict[tuple[str, ...], list[Result] | Result] | None = None
             ) -> tuple[Lab, FakeRunner]:
    runner = FakeRunner({("docker", "logs"): LISTENING, **(answers or {})})
    return Lab(tmp_path / "repo", project="p1", runner=runner), runner


def program(tmp_path: Path, name: str = "mine.py", text: str = "class MySocket: pass\n") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def compose(lab: Lab, *args: str) -> tuple[str, ...]:
    return tuple(lab.compose_argv(*args))


def test_a_python_submission_runs_under_the_adapter_in_its_own_container(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path)
    box = Sandbox(lab, program(tmp_path), "python")
    name, container = f"mine_{box.hex}", f"p1-sandbox-{box.hex}"
    assert (box.name, box.impl, box.container) == (name, f"sandbox:{name}", container)
    with box:
        folder = box.folder
        assert folder is not None
        staged = folder / f"{name}.py"
        assert staged.read_text() == "class MySocket: pass\n"
        assert stat.S_IMODE(staged.stat().st_mode) == 0o444
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        assert runner.calls == [
            compose(lab, "--profile", "sandbox", "run", "-d", "--rm", "--no-deps", "--name", container,
                    "-v", f"{folder}:/submission:ro", "sandbox",
                    "python3", "-m", "lab.sandbox.launcher", "--listen", "127.0.0.1:7900", "--",
                    "python3", "-m", "lab.sandbox.adapter", f"/submission/{name}.py"),
            ("docker", "logs", "--tail", "200", container),
        ]
    assert runner.calls[2:] == [("docker", "logs", "--tail", "200", container),
                                ("docker", "rm", "-f", container),
                                ("docker", "ps", "-a", "-q", "--filter", f"name=^/{container}$")]
    assert not folder.exists()
    assert box.logs() == "launcher: listening on 127.0.0.1:7900"


def test_an_executable_is_the_launchers_command_itself(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path)
    box = Sandbox(lab, program(tmp_path, "a.out", "\x7fELF"), "executable", name="team 7/solution")
    assert box.name == f"team_7_solution_{box.hex}"
    with box:
        assert box.folder is not None
        staged = box.folder / box.name
        assert stat.S_IMODE(staged.stat().st_mode) == 0o555
        assert box.command() == [f"/submission/{box.name}"]
        assert runner.calls[0][-3:] == ("127.0.0.1:7900", "--", f"/submission/{box.name}")


@pytest.mark.parametrize("error", [RuntimeError("the judge broke"), KeyboardInterrupt()])
def test_the_container_and_folder_are_removed_when_the_body_fails(tmp_path: Path, error: BaseException) -> None:
    lab, runner = make_lab(tmp_path)
    box = Sandbox(lab, program(tmp_path), "python")
    with pytest.raises(type(error)):
        with box:
            folder = box.folder
            raise error
    assert ("docker", "rm", "-f", box.container) in runner.calls
    assert folder is not None and not folder.exists()


def test_a_launcher_that_never_listens_fails_within_the_deadline_and_is_removed(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path, {("docker", "logs"): Result(0, "", "Traceback ...\nImportError: x\n")})
    box = Sandbox(lab, program(tmp_path), "python", ready_timeout=2.0)
    with pytest.raises(EngineError) as info:
        box.__enter__()
    assert str(info.value) == (f"sandbox {box.container}: no 'launcher: listening on 127.0.0.1:7900' within 2 s; "
                               "its logs:\nTraceback ...\nImportError: x")
    assert 2.0 <= runner.clock <= 2.2
    assert ("docker", "rm", "-f", box.container) in runner.calls
    assert box.folder is None and list(Path(tempfile.gettempdir()).glob(f"lab-sandbox-{box.hex}-*")) == []
    assert box.logs() == "Traceback ...\nImportError: x"


def test_a_container_that_ended_before_listening_is_reported(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path, {("docker", "logs"): [NOT_YET, GONE]})
    box = Sandbox(lab, program(tmp_path), "python")
    with pytest.raises(EngineError, match=f"sandbox {box.container} ended before its launcher listened"):
        box.__enter__()
    assert ("docker", "rm", "-f", box.container) in runner.calls


def test_a_failed_compose_run_still_removes_what_may_exist(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path, {("docker", "compose"): Result(1, "", "no such service: sandbox")})
    box = Sandbox(lab, program(tmp_path), "python")
    with pytest.raises(EngineError, match="no such service: sandbox"):
        box.__enter__()
    assert runner.calls[-2:] == [("docker", "rm", "-f", box.container),
                                 ("docker", "ps", "-a", "-q", "--filter", f"name=^/{box.container}$")]
    assert box.folder is None


def test_a_container_that_outlives_rm_is_an_error_on_a_clean_exit(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path, {("docker", "ps"): Result(0, "abc123\n", "")})
    box = Sandbox(lab, program(tmp_path), "python", gone_timeout=1.0)
    with pytest.raises(EngineError, match=f"sandbox {box.container} still exists 1 s after docker rm -f"):
        with box:
            pass
    assert box.folder is None


def test_an_already_removed_container_is_fine(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path, {("docker", "rm"): Result(1, "", "Error: No such container: x\n")})
    with Sandbox(lab, program(tmp_path), "python"):
        pass


def test_bad_input_touches_no_docker(tmp_path: Path) -> None:
    lab, runner = make_lab(tmp_path)
    with pytest.raises(FileNotFoundError, match="no program at"):
        Sandbox(lab, tmp_path / "missing.py", "python").__enter__()
    with pytest.raises(ValueError, match="kind must be one of python, executable; got 'elf'"):
        Sandbox(lab, program(tmp_path), "elf")  # type: ignore[arg-type]
    assert runner.calls == []


@pytest.mark.parametrize(("text", "stem"), [("mine", "mine"), ("my prog-1", "my_prog_1"), ("../../etc/passwd",
                         "etc_passwd"), ("1st", "s_1st"), ("", "submission"), ("ü" * 40, "submission"),
                         ("a" * 40, "a" * 32)])
def test_names_are_safe_stems(text: str, stem: str) -> None:
    assert safe_stem(text) == stem


# The topology changes -------------------------------------------------------------------------------

def test_lab_down_removes_left_behind_run_containers_first(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "ps"): Result(0, "c0ffee\nbadf00d\n", "")})
    lab = Lab(tmp_path, project="p2", runner=runner)
    lab.down()
    assert runner.calls == [
        ("docker", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project=p2", "--filter",
         "label=com.docker.compose.oneoff=True"),
        ("docker", "rm", "-f", "-v", "c0ffee", "badf00d"),
        tuple(lab.compose_argv("down", "--volumes", "--remove-orphans", "--timeout", "5")),
    ]


def test_a_running_sandbox_is_not_a_sick_service(tmp_path: Path) -> None:
    rows = [f'{{"Service": "{s}", "State": "running", "Health": "healthy", "Labels": "com.docker.compose.oneoff=False"}}'
            for s in SERVICES]
    rows.append('{"Service": "sandbox", "State": "running", "Health": "", '
                '"Labels": "com.docker.compose.oneoff=True,org.socket-lab.lab=1"}')
    runner = FakeRunner({("docker", "compose"): Result(0, "\n".join(rows), "")})
    assert Lab(tmp_path, project="p3", runner=runner).sick() == ([], False)
