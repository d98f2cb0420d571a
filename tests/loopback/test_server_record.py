"""What both real lab servers record for the grading judge, on 127.0.0.1: every DATA body by digest
(through the control port's ``delivered``, kept across a reset and a restart) and every connection
rejected for breaking the protocol, with its first bytes (``rejections``)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import pytest

from lab.server.log import body_digest
from lab.sockets.framing import encode_data, encode_hello_request
from lab.testing import running_server
from tests.support.peers import read_frames

HOST = "127.0.0.1"
TIMEOUT = 5.0
UNKNOWN = "0000000000000000"
STAMP_A = bytes(range(16))          # bodies start with the judge's 16-byte stamp, as in a graded run
STAMP_B = bytes(range(16, 32))
BAD_TYPE_0 = "unknown frame type 0 in header 0000002000; accepted: HELLO=1, DATA=2, ECHO=3, PING=4, PONG=5"


@pytest.fixture(params=["threaded", "selectors", "forking"])
def impl(request: pytest.FixtureRequest) -> str:
    return request.param


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=TIMEOUT)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes; an RST instead of FIN also ends it."""
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_delivered_counts_each_body_as_often_as_the_server_received_it(impl: str) -> None:
    a_body, b_body = STAMP_A + b"first message", STAMP_B + b"second message"
    with running_server(impl) as srv:
        with connect(srv.port) as one, connect(srv.port) as two:
            one.sendall(encode_data(1, a_body) + encode_data(2, b_body))
            assert [f.body for f in read_frames(one, 2)] == [a_body, b_body]
            two.sendall(encode_data(1, a_body))   # the same message again, on another connection
            assert [f.body for f in read_frames(two, 1)] == [a_body]
        a, b = body_digest(a_body), body_digest(b_body)
        asked = {"cmd": "delivered", "digests": [a, b, UNKNOWN]}
        assert srv.control(asked) == {"ok": True, "counts": {a: 2, b: 1, UNKNOWN: 0},
                                      "refused": {a: 0, b: 0, UNKNOWN: 0}}
        # The judge asks after runs that reset the server, and after restarts: both keep the counts.
        assert srv.control({"cmd": "reset"})["ok"] is True
        assert srv.control(asked)["counts"] == {a: 2, b: 1, UNKNOWN: 0}
        srv.restart()
        assert srv.control(asked)["counts"] == {a: 2, b: 1, UNKNOWN: 0}


def test_a_session_duplicate_is_refused_not_delivered(impl: str) -> None:
    body = STAMP_A + b"resent after a reconnect"
    with running_server(impl) as srv:
        for _ in range(2):
            with connect(srv.port) as sock:
                sock.sendall(encode_hello_request(STAMP_B) + encode_data(1, body))
                assert [f.type.name for f in read_frames(sock, 2)] == ["HELLO", "ECHO"]
        d = body_digest(body)
        assert srv.control({"cmd": "delivered", "digests": [d]}) == {"ok": True, "counts": {d: 1}, "refused": {d: 1}}


def test_a_frame_behind_an_extra_length_prefix_is_one_rejection_with_its_head(impl: str) -> None:
    frame = encode_data(1, b"x" * 19)
    sent = struct.pack("!I", len(frame)) + frame          # 00000020 0000001b02 ...: a length in front
    with running_server(impl) as srv:
        before = time.time()
        with connect(srv.port) as bad:
            peer = f"{HOST}:{bad.getsockname()[1]}"
            bad.sendall(sent)
            assert read_to_end(bad) == b""
        # Recorded before the server closes the socket: nothing to wait for once we saw the end.
        got = srv.control({"cmd": "rejections", "since": before})
        assert got["ok"] is True and len(got["rejections"]) == 1
        rejection = got["rejections"][0]
        assert before <= rejection.pop("at") <= time.time()
        assert rejection == {"conn": 1, "peer": peer, "head": sent.hex(), "received": 36, "kind": "BadFrame",
                             "error": BAD_TYPE_0, "answer": "closed the connection"}
        assert srv.control({"cmd": "rejections", "since": time.time() + 60}) == {"ok": True, "rejections": []}
        assert srv.stats()["errors"] == {"BadFrame": 1}
        assert srv.control({"cmd": "reset"})["ok"] is True
        assert len(srv.control({"cmd": "rejections"})["rejections"]) == 1   # a reset keeps them


def test_the_head_is_the_first_64_bytes_the_connection_ever_received(impl: str) -> None:
    good = encode_data(1, STAMP_A + b"y" * 60)                  # 89 bytes, answered
    garbage = struct.pack("!IB", 8, 9) + bytes(8)             # then an unknown frame type
    with running_server(impl) as srv:
        with connect(srv.port) as sock:
            sock.sendall(good)
            assert len(read_frames(sock, 1)) == 1
            sock.sendall(garbage)
            read_to_end(sock)
        [rejection] = srv.control({"cmd": "rejections"})["rejections"]
        assert (rejection["head"], rejection["received"], rejection["kind"]) == (good[:64].hex(), 102, "BadFrame")
        d = body_digest(STAMP_A + b"y" * 60)
        assert srv.control({"cmd": "delivered", "digests": [d]})["counts"] == {d: 1}


def test_a_clean_conversation_leaves_no_rejection(impl: str) -> None:
    with running_server(impl) as srv:
        with connect(srv.port) as sock:
            sock.sendall(encode_data(1, b"fine"))
            assert len(read_frames(sock, 1)) == 1
            sock.shutdown(socket.SHUT_WR)
            assert read_to_end(sock) == b""
        assert srv.control({"cmd": "rejections"}) == {"ok": True, "rejections": []}
