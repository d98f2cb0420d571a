"""Building the Go examples for real, and the built careful client speaking the driver protocol.

The examples are built with the real ``go`` (a missing one fails these tests
with BuildError's message: nothing here is skipped), then the binaries are run
the way the sandbox runs them: stdin and stdout on one connected socket (here a
socketpair), talking to a lab server or a misbehaving peer on 127.0.0.1. The
build helper's decisions (which command, which environment, which errors) are
checked with a scripted runner.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.grading.static import check_program, read_elf
from lab.host import build
from lab.host.build import BuildError, build_go, default_cache_dir, go_env
from lab.host.engine import Result
from lab.server.behaviour import Behaviour
from lab.sockets import framing
from lab.testing import running_server

from tests.support.peers import abort, accept, listening, read_frames, unused_port

GO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions" / "go"
ANSWER_S = 10.0      # longest wait for any one response; the program's own deadlines are 3 s


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both examples, built once per module; the Go cache is the lab's default, so reruns are warm."""
    out = tmp_path_factory.mktemp("go-bin")
    return {name: build_go(GO_EXAMPLES / name, out / f"{name}-go") for name in ("careful", "naive")}


class Driver:
    """The judge's side of the driver protocol, on a socketpair that is the program's stdin and stdout."""

    def __init__(self, binary: Path, stderr_path: Path) -> None:
        self.sock, theirs = socket.socketpair()
        self.stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(binary)], stdin=theirs, stdout=theirs, stderr=self.stderr)
        theirs.close()
        self.sock.settimeout(ANSWER_S)
        self.lines = self.sock.makefile("rb")

    def send_line(self, raw: bytes) -> None:
        self.sock.sendall(raw + b"\n")

    def answer(self) -> dict[str, Any]:
        line = self.lines.readline()
        assert line.endswith(b"\n"), f"no whole response line (got {line!r}); exit {self.proc.poll()}"
        return json.loads(line)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send_line(json.dumps(request).encode())
        return self.answer()

    def close(self) -> int | None:
        self.lines.close()
        self.sock.close()
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.stderr.close()


@pytest.fixture
def run_program(binaries: dict[str, Path], tmp_path: Path) -> Iterator[Any]:
    started: list[Driver] = []

    def start(name: str) -> Driver:
        driver = Driver(binaries[name], tmp_path / f"{name}.stderr")
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


# --- the build itself -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["careful", "naive"])
def test_each_example_builds_into_a_static_x86_64_elf(binaries: dict[str, Path], name: str) -> None:
    elf = read_elf(binaries[name])
    assert (elf.bits, elf.little_endian, elf.machine, elf.interpreter) == (64, True, 62, None)
    info = check_program(binaries[name])
    assert (info.kind, info.format, info.notes) == ("executable", "static ELF", ())


def test_a_build_works_with_home_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = default_cache_dir()     # warm, computed while HOME is still set
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    out = build_go(GO_EXAMPLES / "naive", tmp_path / "naive-go", cache_dir=cache)
    assert read_elf(out).static is True


def test_without_home_the_cache_goes_to_the_temp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(build.tempfile, "gettempdir", lambda: str(tmp_path))
    assert default_cache_dir() == tmp_path / f"socket-lab-go-{os.getuid()}"
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert default_cache_dir() == Path("/x/cache/socket-lab/go")


# --- the build helper's decisions, with a scripted runner -------------------------------------------

def fake_elf(interpreter: bytes | None) -> bytes:
    """A minimal x86-64 ELF executable header, with a PT_INTERP program header when ``interpreter`` is given."""
    phnum = 1 if interpreter else 0
    header = struct.pack("<4sBBBB8xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 2, 62, 1, 0x401000, 64, 0, 0,
                         64, 56, phnum, 64, 0, 0)
    if not interpreter:
        return header
    path = interpreter + b"\0"
    return header + struct.pack("<IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(path), len(path), 1) + path


class ScriptedRunner:
    """Answers ``go build`` with ``result`` and writes ``output`` where -o points; records each call."""

    def __init__(self, result: Result, output: bytes | None = None, go: str | None = "/opt/go/bin/go") -> None:
        self.result, self.output, self.go = result, output, go
        self.calls: list[tuple[list[str], dict[str, str], Path | None, float]] = []

    def which(self, name: str) -> str | None:
        return self.go if name == "go" else None

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
            stdin: bytes | None = None, cwd: Path | None = None) -> Result:
        self.calls.append((list(argv), dict(env or {}), cwd, timeout))
        if self.output is not None:
            Path(argv[argv.index("-o") + 1]).write_bytes(self.output)
        return self.result


def module(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text("module example/m\n\ngo 1.22\n")
    return src


def test_build_go_runs_go_build_static_for_linux_amd64_in_the_module_folder(tmp_path: Path) -> None:
    src, out, cache = module(tmp_path), tmp_path / "bin" / "prog", tmp_path / "cache"
    runner = ScriptedRunner(Result(0), fake_elf(None))
    assert build_go(src, out, runner=runner, cache_dir=cache) == out.resolve()
    [(argv, env, cwd, timeout)] = runner.calls
    assert argv == ["/opt/go/bin/go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out.resolve()), "."]
    assert cwd == src.resolve()
    assert timeout == 180.0
    assert env == go_env(cache)
    assert {k: env[k] for k in ("CGO_ENABLED", "GOOS", "GOARCH", "GOCACHE", "GOPATH", "GOPROXY", "GOTOOLCHAIN")} == {
        "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64", "GOCACHE": str(cache / "build"),
        "GOPATH": str(cache / "gopath"), "GOPROXY": "off", "GOTOOLCHAIN": "local"}


def test_a_missing_go_is_a_setup_error_that_says_where_it_looked(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "FALLBACK_GO", tmp_path / "no-go")
    with pytest.raises(BuildError) as caught:
        build_go(module(tmp_path), tmp_path / "prog", runner=ScriptedRunner(Result(0), go=None))
    assert str(caught.value) == (f"go not found (looked on PATH and at {tmp_path / 'no-go'}); install Go 1.22 or "
                                 "newer from https://go.dev/dl/, or submit a .py file with MySocket, or an "
                                 "executable built elsewhere")
    assert caught.value.exit_code == 3


def test_a_failed_build_quotes_the_last_20_lines_of_gos_stderr(tmp_path: Path) -> None:
    src = module(tmp_path)
    stderr = "\n".join(f"./main.go:{n}:1: error {n}" for n in range(1, 31)) + "\n"
    with pytest.raises(BuildError) as caught:
        build_go(src, tmp_path / "prog", runner=ScriptedRunner(Result(1, "", stderr)), cache_dir=tmp_path / "c")
    tail = "\n".join(f"  ./main.go:{n}:1: error {n}" for n in range(11, 31))
    assert str(caught.value) == f"go build in {src.resolve()} failed (exit 1):\n{tail}"


def test_a_build_past_its_deadline_says_so(tmp_path: Path) -> None:
    src = module(tmp_path)
    runner = ScriptedRunner(Result(124, "", "go build: no answer within 5 s"))
    with pytest.raises(BuildError) as caught:
        build_go(src, tmp_path / "prog", runner=runner, cache_dir=tmp_path / "c", timeout=5)
    assert str(caught.value) == f"go build in {src.resolve()} did not finish within 5 s: go build: no answer within 5 s"


def test_a_dynamic_output_is_refused(tmp_path: Path) -> None:
    src, out = module(tmp_path), tmp_path / "prog"
    runner = ScriptedRunner(Result(0), fake_elf(b"/lib64/ld-linux-x86-64.so.2"))
    with pytest.raises(BuildError) as caught:
        build_go(src, out, runner=runner, cache_dir=tmp_path / "c")
    assert str(caught.value) == (f"go build in {src.resolve()} made {out.resolve()}, which asks for the loader "
                                 "/lib64/ld-linux-x86-64.so.2; the sandbox runs static x86-64 Linux executables "
                                 "only (is something overriding CGO_ENABLED=0 or the linker?)")


def test_an_output_that_is_not_elf_is_refused(tmp_path: Path) -> None:
    src, out = module(tmp_path), tmp_path / "prog"
    with pytest.raises(BuildError) as caught:
        build_go(src, out, runner=ScriptedRunner(Result(0), b"#!/bin/sh\n"), cache_dir=tmp_path / "c")
    assert str(caught.value) == f"go build in {src.resolve()} exited 0 but {out.resolve()} is not a usable ELF: " \
                                "not an ELF file"


def test_a_folder_without_go_mod_is_refused_before_go_runs(tmp_path: Path) -> None:
    runner = ScriptedRunner(Result(0))
    with pytest.raises(BuildError) as caught:
        build_go(tmp_path, tmp_path / "prog", runner=runner)
    assert str(caught.value) == (f"{tmp_path.resolve()}: no go.mod; give the folder of a Go module whose main "
                                 "package is there")
    assert runner.calls == []


# --- the built programs, speaking the driver protocol ------------------------------------------------

def test_hello_replies_are_exact(run_program: Any) -> None:
    assert run_program("careful").ask({"op": "hello", "protocol": 1}) == {
        "ok": True, "protocol": 1, "framing": "length-prefixed"}
    assert run_program("naive").ask({"op": "hello", "protocol": 1}) == {
        "ok": True, "protocol": 1, "framing": "fixed", "msglen": 1024}


def test_careful_round_trip_returns_the_exact_echo_frame(run_program: Any) -> None:
    program = run_program("careful")
    message = body(3000)
    with running_server("threaded") as srv:
        assert program.ask({"op": "hello", "protocol": 1})["ok"] is True
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": srv.port}) == {"ok": True}
        assert program.ask({"op": "send", "data": b64(framing.encode_data(7, message))}) == {"ok": True}
        assert program.ask({"op": "recv"}) == {"ok": True, "data": b64(framing.encode_echo(7, message))}
        assert program.ask({"op": "close"}) == {"ok": True}
        assert srv.stats()["delivered"] == 1
    assert program.close() == 0


def test_naive_round_trip_with_1024_byte_messages(run_program: Any) -> None:
    program = run_program("naive")
    message = body(1024 - framing.HEADER_SIZE - framing.SEQ.size)
    with running_server("threaded") as srv:
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": srv.port}) == {"ok": True}
        for seq in (1, 2):
            assert program.ask({"op": "send", "data": b64(framing.encode_data(seq, message))}) == {"ok": True}
            assert program.ask({"op": "recv"}) == {"ok": True, "data": b64(framing.encode_echo(seq, message))}


@pytest.mark.parametrize("name, failure", [
    ("careful", {"ok": False, "error": "ConnectionError", "errno": None,
                 "message": "the peer closed the connection between messages"}),
    ("naive", {"ok": False, "error": "RuntimeError", "errno": None, "message": "socket connection broken"}),
])
def test_a_recv_from_a_server_that_closed_is_a_failure(run_program: Any, name: str, failure: dict[str, Any]) -> None:
    program = run_program(name)
    message = body(1024 - framing.HEADER_SIZE - framing.SEQ.size)
    with running_server("threaded", behaviour=Behaviour(mode="close", after=1)) as srv:
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": srv.port}) == {"ok": True}
        assert program.ask({"op": "send", "data": b64(framing.encode_data(1, message))}) == {"ok": True}
        assert program.ask({"op": "recv"}) == {"ok": True, "data": b64(framing.encode_echo(1, message))}
        assert program.ask({"op": "recv"}) == failure


def test_eof_inside_a_frame_is_an_incomplete_message(run_program: Any) -> None:
    program = run_program("careful")
    request = framing.encode_data(1, body(100))
    with listening() as lst:
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": lst.getsockname()[1]}) == {"ok": True}
        peer = accept(lst)
        assert program.ask({"op": "send", "data": b64(request)}) == {"ok": True}
        assert [f.seq for f in read_frames(peer, 1)] == [1]
        peer.sendall(framing.encode_echo(1, body(100))[:40])
        peer.close()
        assert program.ask({"op": "recv"}) == {
            "ok": False, "error": "IncompleteMessage", "errno": None,
            "message": f"the peer closed the connection after 40 of {len(request)} frame bytes"}


def test_a_reset_is_connection_reset_error_with_its_errno(run_program: Any) -> None:
    program = run_program("careful")
    with listening() as lst:
        port = lst.getsockname()[1]
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": port}) == {"ok": True}
        peer = accept(lst)
        client_port = peer.getpeername()[1]
        abort(peer)
        time.sleep(0.1)   # let the RST arrive before the read starts
        assert program.ask({"op": "recv"}) == {
            "ok": False, "error": "ConnectionResetError", "errno": "ECONNRESET",
            "message": f"read tcp 127.0.0.1:{client_port}->127.0.0.1:{port}: read: connection reset by peer"}


def test_a_refused_connect_is_connection_refused_error(run_program: Any) -> None:
    port = unused_port()
    assert run_program("careful").ask({"op": "connect", "host": "127.0.0.1", "port": port}) == {
        "ok": False, "error": "ConnectionRefusedError", "errno": "ECONNREFUSED",
        "message": f"dial tcp 127.0.0.1:{port}: connect: connection refused"}


def test_a_silent_peer_is_a_timeout_error_after_3_s(run_program: Any) -> None:
    program = run_program("careful")
    with listening() as lst:
        port = lst.getsockname()[1]
        assert program.ask({"op": "connect", "host": "127.0.0.1", "port": port}) == {"ok": True}
        peer = accept(lst)
        client_port = peer.getpeername()[1]
        started = time.monotonic()
        answer = program.ask({"op": "recv"})
        took = time.monotonic() - started
        peer.close()
    assert answer == {"ok": False, "error": "TimeoutError", "errno": None,
                      "message": f"recv: no progress for 3s: read tcp 127.0.0.1:{client_port}->127.0.0.1:{port}: "
                                 "i/o timeout"}
    assert 2.9 <= took <= 3.6


def test_careful_answers_malformed_lines_and_keeps_going(run_program: Any) -> None:
    program = run_program("careful")
    program.send_line(b"this is not json")
    assert program.answer() == {"ok": False, "error": "BadRequest", "errno": None,
                                "message": "not a JSON object: invalid character 'h' in literal true (expecting 'r')"}
    assert program.ask({"op": "launch"}) == {"ok": False, "error": "BadRequest", "errno": None,
                                             "message": 'unknown op "launch"'}
    program.send_line(b"x" * (4 * 1024 * 1024 + 1))
    assert program.answer() == {"ok": False, "error": "BadRequest", "errno": None,
                                "message": "request line longer than 4194304 bytes"}
    assert program.ask({"op": "recv"}) == {"ok": False, "error": "OSError", "errno": "ENOTCONN",
                                           "message": "not connected"}
    assert program.ask({"op": "hello", "protocol": 1}) == {"ok": True, "protocol": 1, "framing": "length-prefixed"}


def test_naive_exits_at_once_on_an_overlong_line(run_program: Any) -> None:
    program = run_program("naive")
    program.send_line(b"x" * (4 * 1024 * 1024 + 1))
    assert program.proc.wait(timeout=5) == 0    # no answer: the judge sees the exit (DriverExited)


@pytest.mark.parametrize("name", ["careful", "naive"])
def test_eof_on_stdin_ends_the_program(run_program: Any, name: str) -> None:
    program = run_program(name)
    program.sock.shutdown(socket.SHUT_WR)
    assert program.proc.wait(timeout=5) == 0
