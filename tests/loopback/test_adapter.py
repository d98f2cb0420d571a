"""The sandbox's adapter (python3 -m lab.sandbox.adapter FILE) as a real subprocess, spoken to line by line.

It runs against the example submissions and the lab's own server on 127.0.0.1, over pipes
and over one socketpair end as both stdin and stdout (as the launcher gives it a TCP socket).
Each response is asserted whole, byte for byte.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.sockets.framing import encode_echo
from lab.sockets.naive import make_message
from lab.testing import running_server
from tests.support.peers import unused_port
from tests.support.sandbox import EXAMPLES, ROOT, SUBMISSIONS, adapter_argv, adapter_env, adapters


class Driver:
    """One adapter process on pipes: a line out, a line back, each wait bounded."""

    def __init__(self, path: Path, *options: str) -> None:
        self.proc = subprocess.Popen(adapter_argv(path, *options), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT, env=adapter_env())
        self.buf = b""

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def read_line(self, timeout: float = 10.0) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no response within {timeout} s; have {self.buf!r}"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, f"EOF from the adapter; have {self.buf!r}; stderr: {self.stderr()}"
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def ask(self, obj: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        self.send(json.dumps(obj).encode() + b"\n")
        return json.loads(self.read_line(timeout))

    def end(self, timeout: float = 5.0) -> int:
        """Close stdin (EOF), return the exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None and not f.closed:
                f.close()


@pytest.fixture
def driver() -> Iterator[Any]:
    made: list[Driver] = []

    def make(path: Path, *options: str) -> Driver:
        made.append(Driver(path, *options))
        return made[-1]

    yield make
    for d in made:
        d.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with running_server("threaded") as srv:
        yield srv


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


HELLO = {"op": "hello", "protocol": 1}
OK = {"ok": True}


def test_careful_round_trips_through_the_adapter(driver: Any, server: Any) -> None:
    d = driver(EXAMPLES / "careful.py")
    assert d.ask(HELLO) == {"ok": True, "protocol": 1, "framing": "length-prefixed"}
    assert d.ask({"op": "connect", "host": "127.0.0.1", "port": server.port}) == OK
    for seq, body in [(1, b"hello"), (2, bytes(range(256)) * 40)]:
        assert d.ask({"op": "send", "data": b64(make_message(seq, body))}) == OK
        assert d.ask({"op": "recv"}) == {"ok": True, "data": b64(encode_echo(seq, body))}
    assert d.ask({"op": "close"}) == OK
    assert d.end() == 0


def test_the_exact_bytes_of_a_response(driver: Any) -> None:
    d = driver(EXAMPLES / "howto_fixed.py")
    d.send(b'{"op":"hello","protocol":1}\n')
    assert d.read_line() == b'{"ok":true,"protocol":1,"framing":"fixed","msglen":1024}'
    assert d.end() == 0


def test_a_socket_as_stdin_and_stdout_like_the_launcher_gives(server: Any) -> None:
    with adapters() as start:
        proc, channel = start(EXAMPLES / "howto_fixed.py")
        channel.settimeout(10)
        reader = channel.makefile("rb")
        message = make_message(1, b"x" * (1024 - 13))
        for request in [HELLO, {"op": "connect", "host": "127.0.0.1", "port": server.port},
                        {"op": "send", "data": b64(message)}]:
            channel.sendall(json.dumps(request).encode() + b"\n")
            assert json.loads(reader.readline())["ok"] is True
        channel.sendall(b'{"op":"recv"}\n')
        assert json.loads(reader.readline()) == {"ok": True, "data": b64(encode_echo(1, b"x" * 1011))}
        channel.shutdown(socket.SHUT_WR)
        assert proc.wait(timeout=5) == 0
        reader.close()


@pytest.mark.parametrize(("path", "error", "message"), [
    (EXAMPLES / "raises_at_import.py", "KeyError",
     "KeyError while importing raises_at_import.py at line 11: 'MY_SERVER_ADDRESS'"),
    (EXAMPLES / "syntax_error.py", "SyntaxError", "SyntaxError while importing syntax_error.py at line 16: "
                                                  "expected ':' (syntax_error.py, line 16)"),
    (EXAMPLES / "missing_myreceive.py", "ContractError", "missing_myreceive.py: MySocket has no method "
                                                         "myreceive(self)"),
    (ROOT / "no-such-file.py", "FileNotFoundError", f"{ROOT / 'no-such-file.py'}: cannot be read ([Errno 2] No such "
                                                    f"file or directory: '{ROOT / 'no-such-file.py'}')"),
], ids=lambda v: v.name if isinstance(v, Path) else None)
def test_a_file_that_cannot_load_answers_hello_with_phase_import_and_exits(driver: Any, path: Path, error: str,
                                                                            message: str) -> None:
    d = driver(path)
    assert d.ask(HELLO) == {"ok": False, "error": error, "errno": None, "message": message, "phase": "import"}
    assert d.proc.wait(timeout=5) == 1


def test_an_import_that_never_returns_is_import_timeout_and_the_adapter_still_exits(driver: Any) -> None:
    d = driver(EXAMPLES / "hangs_at_import.py", "--import-timeout", "0.5")
    started = time.monotonic()
    assert d.ask(HELLO) == {"ok": False, "error": "ImportTimeout", "errno": None, "phase": "import",
                            "message": "importing hangs_at_import.py did not finish within 0.5 s (module-level "
                                       "code that never returns)"}
    assert d.proc.wait(timeout=5) == 1            # the import's thread still spins: it must not hold the exit
    assert time.monotonic() - started < 3.0


def test_print_and_stdin_in_the_submission_never_touch_the_protocol(driver: Any) -> None:
    d = driver(SUBMISSIONS / "chatty.py")
    d.send(b'{"op":"hello","protocol":1}\n')
    assert d.read_line() == b'{"ok":true,"protocol":1,"framing":"length-prefixed"}'
    assert d.ask({"op": "connect", "host": "nowhere", "port": 1}) == OK
    assert d.ask({"op": "send", "data": b64(make_message(1, b"abc"))}) == OK
    assert d.ask({"op": "recv"}) == {"ok": True, "data": b64(encode_echo(1, b"abc"))}
    assert d.buf == b""
    assert d.end() == 0
    err = d.stderr()
    assert "hello from import\n" in err and '{"ok": false, "error": "Forged"}' in err
    assert "myreceive; stdin held 0 bytes" in err


@pytest.mark.parametrize(("mode", "failure"), [
    ("exit", {"ok": False, "error": "SystemExit", "errno": None, "message": "3"}),
    ("reset", {"ok": False, "error": "ConnectionResetError", "errno": "ECONNRESET",
               "message": "[Errno 104] peer reset"}),
    ("odd-errno", {"ok": False, "error": "OSError", "errno": None, "message": "odd"}),
    ("bad-str", {"ok": False, "error": "Stop", "errno": None, "message": "<str() of the Stop raised RuntimeError>"}),
])
def test_whatever_mysend_raises_is_a_failure_and_the_adapter_goes_on(driver: Any, mode: str,
                                                                      failure: dict[str, Any]) -> None:
    d = driver(SUBMISSIONS / "misbehaves.py")
    assert d.ask(HELLO)["msglen"] == 64
    assert d.ask({"op": "connect", "host": mode, "port": 1}) == OK
    assert d.ask({"op": "send", "data": b64(make_message(1, b"." * 51))}) == failure
    assert d.ask({"op": "send", "data": b64(make_message(2, b"." * 51))}) == failure   # still serving
    assert d.ask({"op": "close"}) == OK
    assert d.end() == 0


@pytest.mark.parametrize(("mode", "failure"), [
    ("none", {"ok": False, "error": "TypeError", "errno": None,
              "message": "myreceive() must return bytes (one whole frame); it returned NoneType"}),
    ("interrupt", {"ok": False, "error": "KeyboardInterrupt", "errno": None, "message": ""}),
])
def test_what_myreceive_does_wrong_is_a_failure(driver: Any, mode: str, failure: dict[str, Any]) -> None:
    d = driver(SUBMISSIONS / "misbehaves.py")
    d.ask(HELLO)
    d.ask({"op": "connect", "host": mode, "port": 1})
    assert d.ask({"op": "send", "data": b64(make_message(1, b"." * 51))}) == OK
    assert d.ask({"op": "recv"}) == failure


def test_a_connect_failure_carries_its_errno_name(driver: Any) -> None:
    d = driver(EXAMPLES / "careful.py")
    d.ask(HELLO)
    assert d.ask({"op": "connect", "host": "127.0.0.1", "port": unused_port()}) == {
        "ok": False, "error": "ConnectionRefusedError", "errno": "ECONNREFUSED",
        "message": "[Errno 111] Connection refused"}


def test_eof_in_the_middle_of_a_call_ends_the_adapter_at_once(driver: Any) -> None:
    d = driver(SUBMISSIONS / "misbehaves.py")
    d.ask(HELLO)
    d.ask({"op": "connect", "host": "block", "port": 1})
    d.ask({"op": "send", "data": b64(make_message(1, b"." * 51))})
    d.send(b'{"op":"recv"}\n')
    time.sleep(0.3)
    started = time.monotonic()
    assert d.end() == 0
    assert time.monotonic() - started < 1.0


def test_a_close_that_hangs_is_bounded_and_a_leftover_thread_does_not_keep_it_alive(driver: Any) -> None:
    d = driver(SUBMISSIONS / "blocks_in_close.py")
    d.ask(HELLO)
    d.ask({"op": "connect", "host": "h", "port": 1})
    started = time.monotonic()
    assert d.ask({"op": "close"}) == OK
    assert 1.9 < time.monotonic() - started < 3.0    # close_bounded's 2 s
    assert d.end(timeout=2) == 0


@pytest.mark.parametrize(("lines", "message"), [
    ([b'{"op":"recv"}'], "recv: the first request must be hello"),
    ([b"nonsense"], "a line that is not one JSON object: Expecting value: line 1 column 1 (char 0)"),
    ([b'{"op":"hello","protocol":2}'], "hello: protocol 2 is not supported; accepted: 1"),
    ([b'{"op":"hello","protocol":1}', b'{"op":"hello","protocol":1}'], "hello: sent twice; it is the first "
                                                                       "request only"),
    ([b'{"op":"hello","protocol":1}', b'{"op":"recv"}'], "recv: only after connect and before close (state ready)"),
])
def test_a_judge_that_breaks_the_protocol_gets_a_protocol_error_and_the_adapter_exits(
        driver: Any, lines: list[bytes], message: str) -> None:
    d = driver(EXAMPLES / "careful.py")
    for line in lines[:-1]:
        d.send(line + b"\n")
        assert json.loads(d.read_line())["ok"] is True
    d.send(lines[-1] + b"\n")
    assert json.loads(d.read_line()) == {"ok": False, "error": "DriverProtocolError", "errno": None,
                                         "message": message}
    assert d.proc.wait(timeout=5) == 2


def test_a_request_fed_a_byte_at_a_time_is_served(driver: Any) -> None:
    d = driver(EXAMPLES / "careful.py")
    for byte in b'{"op":"hello","protocol":1}\n':
        d.send(bytes([byte]))
    assert json.loads(d.read_line())["framing"] == "length-prefixed"
    d.send(b'{"op":"close"}\n{"op":"close"}\n')          # two requests in one write: two responses, in order
    assert json.loads(d.read_line()) == OK and json.loads(d.read_line()) == OK
    assert d.end() == 0
