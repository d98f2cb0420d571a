"""RemoteSubject driving the real adapter in a subprocess (one end of a socketpair as its stdin and stdout).

The judge's view of submitted code, against the lab's server on 127.0.0.1: intact exchanges
in both framings, bodies split into messages of exactly MSGLEN bytes, replies checked by
sequence number, failures with the program's exact names, and every way a call can be cut
short (a killed adapter, the watchdog, the hard timeout), each within a stated time.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.inlab.remote import RemoteFailure, RemoteSubject, probe
from lab.inlab.subjects import make_subject
from lab.inlab.submission import SubmissionLoadFailed
from lab.sandbox.protocol import HelloReply
from lab.testing import running_server
from tests.support.peers import unused_port
from tests.support.sandbox import EXAMPLES, SUBMISSIONS, adapters

NONCE = b"\xa5" * 8


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with running_server("threaded") as srv:
        yield srv


class Sandbox:
    """Makes RemoteSubjects whose dial starts a fresh adapter for ``path``; remembers the processes."""

    def __init__(self, start: Any) -> None:
        self.start = start
        self.procs: list[subprocess.Popen[bytes]] = []

    def dial_for(self, path: Path, *options: str) -> Any:
        def dial(timeout: float) -> Any:
            assert timeout == 15.0
            proc, channel = self.start(path, *options)
            self.procs.append(proc)
            return channel
        return dial

    def subject(self, path: Path, host: str, port: int, **kw: Any) -> RemoteSubject:
        return RemoteSubject(f"sandbox:{path.stem.replace('_', '-')}", host, port, dial=self.dial_for(path),
                             nonce=NONCE, **kw)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with adapters() as start:
        yield Sandbox(start)


def stamped(seq: int, data: bytes) -> bytes:
    return NONCE + seq.to_bytes(8, "big") + data


def test_careful_exchanges_are_intact(sandbox: Sandbox, server: Any) -> None:
    subject = sandbox.subject(EXAMPLES / "careful.py", "127.0.0.1", server.port)
    try:
        subject.connect()
        assert (subject.framing, subject.msglen) == ("length-prefixed", None)
        for i, body in enumerate([b"hello", b"x" * 5000, b""], start=1):
            assert subject.exchange(body) == body and subject.last_exchange_intact is True
            assert subject.seq == i
        assert [(m.seq, m.size, m.sent, m.reply) for m in subject.messages] == [
            (1, 34, True, "intact"), (2, 5029, True, "intact"), (3, 29, True, "intact")]
        assert subject.messages[0].digest == hashlib.blake2b(stamped(1, b"hello"), digest_size=8).hexdigest()
        assert subject.socket_stats() == {"bytes_sent": 34 + 5029 + 29, "messages": 3,
                                          "framing": "length-prefixed", "msglen": None}
    finally:
        subject.close()
    assert sandbox.procs[0].wait(timeout=5) == 0


def test_a_fixed_body_larger_than_room_goes_as_msglen_messages(sandbox: Sandbox, server: Any) -> None:
    subject = sandbox.subject(EXAMPLES / "howto_fixed.py", "127.0.0.1", server.port)
    try:
        subject.connect()
        assert (subject.framing, subject.msglen) == ("fixed", 1024)
        room = 1024 - 13 - 16
        body = bytes(range(256)) * 20                       # 5120 bytes
        assert subject.exchange(body) == body and subject.last_exchange_intact
        assert len(subject.messages) == math.ceil(len(body) / room) == 6
        assert {m.size for m in subject.messages} == {1024}
        last = body[5 * room:].ljust(room, b".")
        assert subject.messages[-1].digest == hashlib.blake2b(stamped(6, last), digest_size=8).hexdigest()
        subject.send(b"y" * 3000)                           # a plain send splits the same way
        assert len(subject.messages) == 6 + math.ceil(3000 / room)
        assert subject.bytes_sent == 1024 * len(subject.messages)
    finally:
        subject.close()


def test_replies_are_checked_by_sequence_number(sandbox: Sandbox, server: Any) -> None:
    subject = sandbox.subject(SUBMISSIONS / "lags_one.py", "127.0.0.1", server.port)
    try:
        subject.connect()
        assert subject.exchange(b"first") == b"first" and subject.last_exchange_intact
        assert subject.exchange(b"again") == b"first"       # the data of what came back: message 1's
        assert subject.last_exchange_intact is False
        assert [m.reply for m in subject.messages] == ["intact", "corrupt"]
    finally:
        subject.close()


def test_a_fabricating_program_looks_intact_here_its_messages_are_what_the_server_check_uses(
        sandbox: Sandbox) -> None:
    # It talks to no server at all: only the server's delivery record, checked later, can tell.
    subject = sandbox.subject(SUBMISSIONS / "fabricates.py", "127.0.0.1", unused_port())
    try:
        subject.connect()
        assert subject.exchange(b"one") == b"one" and subject.last_exchange_intact
        assert subject.exchange(b"two") == b"two" and subject.last_exchange_intact
        assert [m.as_dict() for m in subject.messages] == [
            {"seq": 1, "digest": hashlib.blake2b(stamped(1, b"one"), digest_size=8).hexdigest(), "size": 32,
             "sent": True, "reply": "intact"},
            {"seq": 2, "digest": hashlib.blake2b(stamped(2, b"two"), digest_size=8).hexdigest(), "size": 32,
             "sent": True, "reply": "intact"}]
    finally:
        subject.close()


def test_a_refused_connect_is_a_remote_failure_with_its_names(sandbox: Sandbox) -> None:
    subject = sandbox.subject(EXAMPLES / "careful.py", "127.0.0.1", unused_port())
    try:
        with pytest.raises(RemoteFailure) as info:
            subject.connect()
    finally:
        subject.close()
    exc = info.value
    assert (exc.error, exc.error_name, exc.errno_name, exc.errno, str(exc)) == (
        "ConnectionRefusedError", "ConnectionRefusedError", "ECONNREFUSED", 111, "[Errno 111] Connection refused")


def test_system_exit_in_the_submission_is_reported_and_the_subject_goes_on(sandbox: Sandbox) -> None:
    subject = sandbox.subject(SUBMISSIONS / "misbehaves.py", "exit", 1)
    try:
        subject.connect()
        with pytest.raises(RemoteFailure) as info:
            subject.send(b"x")
        assert (info.value.error, info.value.errno_name, str(info.value)) == ("SystemExit", None, "3")
        with pytest.raises(RemoteFailure, match="^3$"):
            subject.send(b"x")
    finally:
        subject.close()


def blocked(sandbox: Sandbox, **kw: Any) -> RemoteSubject:
    subject = sandbox.subject(SUBMISSIONS / "misbehaves.py", "block", 1, **kw)
    subject.connect()
    subject.send(b"x")
    return subject


def test_an_adapter_killed_mid_call_is_driver_exited(sandbox: Sandbox) -> None:
    subject = blocked(sandbox)
    try:
        threading.Timer(0.3, sandbox.procs[0].kill).start()
        started = time.monotonic()
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert time.monotonic() - started < 2.0
    finally:
        subject.close()
    assert info.value.error == "DriverExited"
    assert str(info.value) == "recv: the channel ended: the program exited or closed stdout"


def test_force_unblock_returns_a_blocked_receive_within_a_second(sandbox: Sandbox) -> None:
    subject = blocked(sandbox)
    try:
        threading.Timer(0.3, subject.force_unblock).start()
        started = time.monotonic()
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert time.monotonic() - started < 1.0
    finally:
        subject.close()
    assert (info.value.error, str(info.value)) == ("DriverExited", "recv: the channel ended: the lab shut the "
                                                                   "channel (watchdog)")
    assert sandbox.procs[0].wait(timeout=2) == 0      # the adapter read EOF and left, call and all


def test_hard_timeout_bounds_a_read(sandbox: Sandbox) -> None:
    subject = blocked(sandbox, hard_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert 0.5 <= time.monotonic() - started < 1.5
    finally:
        subject.close()
    assert (info.value.error, str(info.value)) == ("DriverTimeout", "recv: no response within 0.5 s")


def test_prepare_starts_the_program_once_and_connect_then_only_connects(sandbox: Sandbox) -> None:
    subject = sandbox.subject(EXAMPLES / "careful.py", "127.0.0.1", unused_port())
    try:
        subject.prepare()
        assert subject.framing == "length-prefixed" and len(sandbox.procs) == 1
        subject.prepare()                      # a second call is nothing
        with pytest.raises(RemoteFailure) as info:
            subject.connect()
        assert len(sandbox.procs) == 1         # the program prepared is the one that connected
    finally:
        subject.close()
    assert info.value.errno_name == "ECONNREFUSED"


@pytest.mark.parametrize(("path", "status", "error"), [
    (EXAMPLES / "raises_at_import.py", "error", "KeyError"),
    (EXAMPLES / "missing_myreceive.py", "error", "ContractError"),
])
def test_a_file_that_cannot_load_fails_connect_and_probe(sandbox: Sandbox, path: Path, status: str,
                                                         error: str) -> None:
    subject = sandbox.subject(path, "127.0.0.1", 1)
    with pytest.raises(SubmissionLoadFailed) as info:
        subject.connect()
    subject.close()
    assert (info.value.status, info.value.error) == (status, error)
    with pytest.raises(SubmissionLoadFailed) as probed:
        probe("sandbox:x", dial=sandbox.dial_for(path))
    assert (probed.value.status, probed.value.error, probed.value.message) == (status, error, info.value.message)


def test_an_import_that_never_returns_is_blocked(sandbox: Sandbox) -> None:
    with pytest.raises(SubmissionLoadFailed) as info:
        probe("sandbox:x", dial=sandbox.dial_for(EXAMPLES / "hangs_at_import.py", "--import-timeout", "0.5"))
    assert (info.value.status, info.value.error) == ("blocked", "ImportTimeout")


def test_probe_returns_the_framing(sandbox: Sandbox) -> None:
    assert probe("sandbox:howto", dial=sandbox.dial_for(EXAMPLES / "howto_fixed.py")) == HelloReply("fixed", 1024)
    assert sandbox.procs[0].wait(timeout=5) == 0


def test_make_subject_builds_a_remote_subject_for_sandbox_names(sandbox: Sandbox, server: Any) -> None:
    subject = make_subject("sandbox:careful", "127.0.0.1", server.port,
                           dial=sandbox.dial_for(EXAMPLES / "careful.py"), hard_timeout=10.0)
    assert isinstance(subject, RemoteSubject) and subject.hard_timeout == 10.0
    try:
        subject.connect()
        assert subject.exchange(b"ping") == b"ping" and subject.last_exchange_intact
    finally:
        subject.close()
    with pytest.raises(ValueError, match="or a submission sandbox:NAME"):
        make_subject("file:/tmp/submissions/x.py", "h", 1)
