"""lab.server.jsonlines on 127.0.0.1: framing, the texts of its refusals, and every bound it promises."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.server import jsonlines
from lab.server.jsonlines import JsonLinesServer

pytestmark = pytest.mark.loopback

HOST = "127.0.0.1"


class Echo(JsonLinesServer):
    """Echoes each request; ``{"pad": N}`` gets a reply of N extra bytes."""

    name = "echo-test"

    def handle(self, request: Any) -> dict[str, Any]:
        if isinstance(request, dict) and "pad" in request:
            return {"ok": True, "pad": "x" * request["pad"]}
        return {"ok": True, "echo": request}


class Quiet(Echo):
    """Answers blank lines like any other line and closes on an oversized one without a word."""

    skip_blank_lines = False

    def too_long(self) -> None:
        return None


def _serve(cls: type[JsonLinesServer] = Echo, **kwargs: Any) -> JsonLinesServer:
    return cls(HOST, 0, poll=0.05, **kwargs).start()


@pytest.fixture
def server() -> Iterator[JsonLinesServer]:
    srv = _serve()
    yield srv
    srv.stop()


def _connect(port: int, payload: bytes = b"", timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    if payload:
        sock.sendall(payload)
    return sock


def _replies(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    buf = b""
    while buf.count(b"\n") < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {buf!r}"
        buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def _closed_within(sock: socket.socket, seconds: float) -> float:
    start = time.monotonic()
    sock.settimeout(seconds)
    while True:
        try:
            if sock.recv(65536) == b"":
                break
        except ConnectionResetError:
            break
    return time.monotonic() - start


def _conn_threads(srv: JsonLinesServer) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{srv.name}-conn-{srv.port}"]


def _wait(predicate: Any, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# Request / response -------------------------------------------------------------------------------

def test_request_round_trip(server: JsonLinesServer) -> None:
    assert jsonlines.request(HOST, server.port, {"hi": [1, 2]}, timeout=2.0) == {"ok": True, "echo": {"hi": [1, 2]}}


def test_request_line_returns_the_raw_line(server: JsonLinesServer) -> None:
    line = jsonlines.request_line(HOST, server.port, "ping", timeout=2.0, reply_timeout=3.0)
    assert line == b'{"ok": true, "echo": "ping"}'


def test_several_lines_on_one_connection_are_answered_in_order(server: JsonLinesServer) -> None:
    with _connect(server.port, b'{"n": 1}\n\n  \n{"n": 2}\n[3]\n') as sock:
        assert [r["echo"] for r in _replies(sock, 3)] == [{"n": 1}, {"n": 2}, [3]]  # blank lines: no reply


def test_a_request_split_across_sends_is_one_request(server: JsonLinesServer) -> None:
    with _connect(server.port, b'{"n"') as sock:
        time.sleep(0.1)
        sock.sendall(b': 1}\n')
        assert _replies(sock, 1) == [{"ok": True, "echo": {"n": 1}}]


def test_blank_lines_are_answered_when_the_server_says_so() -> None:
    srv = _serve(Quiet)
    try:
        with _connect(srv.port, b'\n{"n": 1}\n') as sock:
            blank, echo = _replies(sock, 2)
        assert blank["ok"] is False and "not valid JSON" in blank["error"] and echo["echo"] == {"n": 1}
    finally:
        srv.stop()


# Malformed and oversized --------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b'{"n": 1\n', b"\xff\xfe\n", b"nope\n"])
def test_malformed_json_is_answered_and_the_connection_stays_usable(server: JsonLinesServer, payload: bytes) -> None:
    with _connect(server.port, payload) as sock:
        [reply] = _replies(sock, 1)
        assert reply["ok"] is False
        assert reply["error"].startswith("request is not valid JSON (") and "one JSON object per line" in reply["error"]
        sock.sendall(b'{"n": 2}\n')
        assert _replies(sock, 1) == [{"ok": True, "echo": {"n": 2}}]


def test_oversized_line_without_a_newline_is_refused_and_closed(server: JsonLinesServer) -> None:
    with _connect(server.port, b'{"pad": "' + b"x" * 100_000) as sock:
        [reply] = _replies(sock, 1)
        assert reply == {"ok": False, "error": "request larger than 65536 bytes; send one JSON object per line, "
                                               "at most 65536 bytes"}
        assert _closed_within(sock, 2.0) < 2.0


def test_oversized_line_with_a_newline_is_refused_after_the_lines_before_it() -> None:
    srv = _serve(max_line=1024)
    try:
        with _connect(srv.port, b'{"n": 1}\n' + b'"' + b"x" * 2000 + b'"\n{"n": 2}\n') as sock:
            first, refusal = _replies(sock, 2)
            assert first["echo"] == {"n": 1} and "larger than 1024 bytes" in refusal["error"]
            assert _closed_within(sock, 2.0) < 2.0
    finally:
        srv.stop()


def test_a_line_of_exactly_max_line_bytes_is_served() -> None:
    srv = _serve(max_line=1024)
    try:
        line = b'"' + b"x" * 1022 + b'"'
        with _connect(srv.port, line + b"\n") as sock:
            assert _replies(sock, 1)[0]["echo"] == "x" * 1022
    finally:
        srv.stop()


def test_oversized_line_closes_without_a_reply_when_too_long_says_none() -> None:
    srv = _serve(Quiet, max_line=1024)
    try:
        with _connect(srv.port, b"x" * 5000) as sock:
            sock.settimeout(2.0)
            assert sock.recv(65536) == b""
    finally:
        srv.stop()


# Deadlines and limits -----------------------------------------------------------------------------

def test_idle_connection_is_closed_after_idle_timeout() -> None:
    srv = _serve(idle_timeout=0.3)
    try:
        with _connect(srv.port) as sock:
            assert 0.2 < _closed_within(sock, 3.0) < 2.0
    finally:
        srv.stop()


def test_no_idle_timeout_keeps_a_quiet_connection_open(server: JsonLinesServer) -> None:
    with _connect(server.port) as sock:
        time.sleep(0.5)
        sock.sendall(b'{"n": 1}\n')
        assert _replies(sock, 1) == [{"ok": True, "echo": {"n": 1}}]


def _never_reading(port: int) -> socket.socket:
    """A client that asks for megabytes of replies with a tiny receive buffer and never reads them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(2.0)
    sock.connect((HOST, port))
    sock.sendall(b'{"pad": 1000000}\n' * 20)
    return sock


def test_a_client_that_never_reads_does_not_pin_its_thread() -> None:
    srv = _serve(max_connections=1, reply_timeout=0.3)
    try:
        with _never_reading(srv.port):
            time.sleep(0.1)
            # While the reply is stuck the one slot is taken...
            assert "busy" in jsonlines.request(HOST, srv.port, {"n": 1}, timeout=2.0)["error"]
            # ...and once the reply deadline passes the thread gives up and the slot is free again.
            assert _wait(lambda: not _conn_threads(srv))
            assert jsonlines.request(HOST, srv.port, {"n": 2}, timeout=2.0) == {"ok": True, "echo": {"n": 2}}
    finally:
        srv.stop()


def test_busy_server_refuses_with_a_reply_and_serves_again_once_a_slot_frees() -> None:
    srv = _serve(max_connections=2)
    try:
        held = [_connect(srv.port, b'{"n": 0}\n') for _ in range(2)]
        for sock in held:
            _replies(sock, 1)  # a reply proves the connection has its thread
        assert jsonlines.request(HOST, srv.port, {"n": 1}, timeout=2.0) == {
            "ok": False, "error": "busy: 2 connections open; retry shortly"}
        held.pop().close()
        assert _wait(lambda: len(_conn_threads(srv)) == 1)
        assert jsonlines.request(HOST, srv.port, {"n": 2}, timeout=2.0) == {"ok": True, "echo": {"n": 2}}
        held.pop().close()
    finally:
        srv.stop()


def test_stop_returns_within_its_deadline_with_connections_open() -> None:
    srv = _serve(reply_timeout=30.0)
    idle = _connect(srv.port)
    partial = _connect(srv.port, b'{"n": ')
    stuck = _never_reading(srv.port)
    try:
        assert _wait(lambda: len(_conn_threads(srv)) == 3)
        time.sleep(0.2)  # let the stuck one block in sendall
        start = time.monotonic()
        srv.stop(timeout=1.0)
        assert time.monotonic() - start < 1.5
        assert _conn_threads(srv) == []  # every thread was woken, none left behind
        assert _closed_within(idle, 2.0) < 2.0 and _closed_within(partial, 2.0) < 2.0
        with pytest.raises(OSError):
            socket.create_connection((HOST, srv.port), timeout=1.0).close()
    finally:
        for sock in (idle, partial, stuck):
            sock.close()


def test_stop_before_start_and_the_context_manager() -> None:
    Echo(HOST, 0).stop(timeout=0.5)
    with Echo(HOST, 0, poll=0.05) as srv:
        assert jsonlines.request(HOST, srv.port, 1, timeout=2.0)["echo"] == 1
    assert _conn_threads(srv) == []


# The client's own bounds --------------------------------------------------------------------------

def _one_shot_server(reply: bytes) -> tuple[socket.socket, threading.Thread]:
    """Accepts one connection, reads the request, sends ``reply`` and closes."""
    listener = socket.create_server((HOST, 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(reply)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    return listener, t


def test_client_reports_a_server_that_closes_before_a_full_reply() -> None:
    listener, t = _one_shot_server(b'{"ok": tr')
    with listener:
        with pytest.raises(ConnectionError, match="after 9 bytes without a full reply"):
            jsonlines.request(HOST, listener.getsockname()[1], {}, timeout=2.0)
        t.join(5)
    listener, t = _one_shot_server(b"")
    with listener:
        with pytest.raises(ConnectionError, match="^gone: 0$"):
            jsonlines.request(HOST, listener.getsockname()[1], {}, timeout=2.0, closed=lambda n: f"gone: {n}")
        t.join(5)


def test_client_bounds_the_reply_it_reads() -> None:
    listener, t = _one_shot_server(b"x" * 5000)
    with listener:
        with pytest.raises(ConnectionError, match="reply larger than 1024 bytes"):
            jsonlines.request(HOST, listener.getsockname()[1], {}, timeout=2.0, max_reply=1024)
        t.join(5)


def test_client_times_out_on_a_server_that_never_answers() -> None:
    with socket.create_server((HOST, 0)) as silent:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            jsonlines.request(HOST, silent.getsockname()[1], {}, timeout=0.3)
        assert 0.25 < time.monotonic() - start < 2.0
