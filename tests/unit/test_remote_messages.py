"""The judge's side of the sandbox (lab.inlab.remote) against an in-memory fake program: no subprocess, no server.

The messages are asserted byte for byte (stamp, counter, padding, digests); the fake program
answers as an echoing submission would, whole or a byte at a time, and misbehaves on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.inlab.remote import MAX_MESSAGES_PER_CALL, OVERHEAD, RemoteFailure, RemoteSubject, Stamper, data_of, digest, probe
from lab.inlab.submission import SubmissionLoadFailed
from lab.sandbox import protocol as proto
from lab.sockets import framing
from lab.sockets.framing import FrameType

NONCE = bytes.fromhex("0102030405060708")
IMPL = "sandbox:fake"


def stamp(seq: int) -> bytes:
    return NONCE + seq.to_bytes(8, "big")


# Messages without any I/O -----------------------------------------------------------------------------
def test_a_fixed_message_is_exactly_msglen_bytes_stamped_and_padded() -> None:
    stamper = Stamper(NONCE, "fixed", 64)
    assert stamper.room == 64 - 13 - 16 == 35
    (m,) = stamper.messages(b"hello")
    assert m.seq == 1 and len(m.frame) == 64
    assert m.stamped == stamp(1) + b"hello" + b"." * 30
    assert m.frame == b"\x00\x00\x00\x3b\x02" + (1).to_bytes(8, "big") + m.stamped
    assert m.echo == b"\x00\x00\x00\x3b\x03" + (1).to_bytes(8, "big") + m.stamped
    assert m.data == b"hello"


def test_a_fixed_body_larger_than_room_is_carried_by_consecutive_messages() -> None:
    stamper = Stamper(NONCE, "fixed", 1024)
    body = bytes(range(256)) * 12                      # 3072 bytes
    messages = stamper.messages(body)
    assert len(messages) == math.ceil(3072 / 995) == 4
    assert [len(m.frame) for m in messages] == [1024] * 4
    assert [m.seq for m in messages] == [1, 2, 3, 4]
    assert b"".join(m.data for m in messages) == body
    assert messages[3].stamped == stamp(4) + body[2985:] + b"." * (995 - 87)
    assert stamper.messages(b"")[0].stamped == stamp(5) + b"." * 995   # an empty body: one padded message


def test_with_room_for_the_stamp_only_each_call_is_one_message() -> None:
    stamper = Stamper(NONCE, "fixed", 29)
    assert stamper.room == 0
    messages = stamper.messages(b"x" * 5000)
    assert [(m.seq, m.frame) for m in messages] == [(1, b"\x00\x00\x00\x18\x02" + (1).to_bytes(8, "big") + stamp(1))]


def test_one_call_becomes_at_most_4096_small_fixed_messages() -> None:
    stamper = Stamper(NONCE, "fixed", 64)          # room for 35 bytes of data each
    messages = stamper.messages(bytes(1024 * 1024))
    assert MAX_MESSAGES_PER_CALL == 4096
    assert len(messages) == 4096 and {len(m.frame) for m in messages} == {64}
    assert sum(len(m.data) for m in messages) == 4096 * 35
    assert len(stamper.messages(bytes(4096 * 35))) == 4096 and len(stamper.messages(bytes(4096 * 35 + 1))) == 4096


def test_length_prefixed_is_one_message_per_call_unless_a_line_cannot_carry_it() -> None:
    stamper = Stamper(NONCE, "length-prefixed", None)
    (m,) = stamper.messages(b"hello")
    assert m.frame == framing.encode_data(1, stamp(1) + b"hello") and len(m.frame) == 34
    room = proto.MAX_DATA - OVERHEAD
    big = stamper.messages(b"y" * (room + 1))
    assert [len(m.frame) for m in big] == [proto.MAX_DATA, OVERHEAD + 1]
    assert [m.seq for m in big] == [2, 3]


def test_every_body_is_unique_and_named_by_its_digest() -> None:
    stamper = Stamper(NONCE, "length-prefixed", None)
    a, b = stamper.messages(b"same") + stamper.messages(b"same")
    assert a.stamped != b.stamped
    assert digest(a.stamped) == hashlib.blake2b(stamp(1) + b"same", digest_size=8).hexdigest()
    assert len(digest(a.stamped)) == 16


def test_stamper_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="nonce must be 8 bytes; got 3"):
        Stamper(b"abc", "fixed", 64)
    with pytest.raises(ValueError, match="fixed framing needs msglen >= 29; got 28"):
        Stamper(NONCE, "fixed", 28)
    with pytest.raises(ValueError, match="framing 'lines'; accepted: fixed, length-prefixed"):
        Stamper(NONCE, "lines", None)


def test_data_of_strips_header_sequence_number_and_stamp() -> None:
    assert data_of(framing.encode_echo(9, stamp(9) + b"body")) == b"body"


# A fake program over a socketpair ---------------------------------------------------------------------
Behaviour = Callable[["FakeProgram", proto.Request], "bytes | None"]


class FakeProgram:
    """Answers the driver protocol as an echoing submission would; ``answer`` may override any response.

    ``dribble`` writes every response a byte at a time and reads requests a byte at a time too.
    """

    def __init__(self, sock: socket.socket, *, hello: proto.Response = proto.HelloReply("length-prefixed"),
                 answer: Behaviour | None = None, dribble: bool = False) -> None:
        self.sock, self.hello, self.answer, self.dribble = sock, hello, answer, dribble
        self.requests: list[proto.Request] = []
        self.sent: list[bytes] = []
        self.replies: list[bytes] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def respond(self, request: proto.Request) -> bytes | None:
        if self.answer is not None and (line := self.answer(self, request)) is not None:
            return line
        if isinstance(request, proto.Hello):
            return proto.encode_response(self.hello)
        if isinstance(request, proto.Send):
            self.sent.append(request.data)
            return proto.encode_response(proto.Ack())
        if isinstance(request, proto.Recv):
            msg = self.sent[len(self.replies)]
            reply = msg[:4] + bytes([FrameType.ECHO]) + msg[5:]
            self.replies.append(reply)
            return proto.encode_response(proto.Received(reply))
        return proto.encode_response(proto.Ack())

    def run(self) -> None:
        reader = proto.LineReader()
        self.sock.settimeout(5)
        with self.sock, contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 if self.dribble else 65536):
                for line in reader.feed(chunk):
                    request = proto.decode_request(line)
                    self.requests.append(request)
                    out = self.respond(request)
                    if out == b"EXIT":
                        return
                    for i in range(len(out) if self.dribble else 1):
                        self.sock.sendall(out[i:i + 1] if self.dribble else out)


@contextlib.contextmanager
def remote(*, hard_timeout: float = 5.0, **kw: Any) -> Iterator[tuple[RemoteSubject, list[FakeProgram]]]:
    programs: list[FakeProgram] = []

    def dial(timeout: float) -> socket.socket:
        assert timeout == 15.0
        ours, theirs = socket.socketpair()
        programs.append(FakeProgram(theirs, **kw))
        return ours

    subject = RemoteSubject(IMPL, "127.0.0.1", 7000, dial=dial, hard_timeout=hard_timeout, nonce=NONCE)
    try:
        yield subject, programs
    finally:
        subject.close()


@pytest.mark.parametrize("dribble", [False, True], ids=["whole", "byte-at-a-time"])
def test_an_exchange_through_a_program_is_intact_and_recorded(dribble: bool) -> None:
    with remote(dribble=dribble) as (subject, programs):
        subject.connect()
        assert (subject.framing, subject.msglen) == ("length-prefixed", None)
        assert subject.exchange(b"hello") == b"hello" and subject.last_exchange_intact is True
        assert subject.seq == 1
        assert programs[0].requests[:3] == [proto.Hello(), proto.Connect("127.0.0.1", 7000),
                                            proto.Send(framing.encode_data(1, stamp(1) + b"hello"))]
        assert [m.as_dict() for m in subject.messages] == [
            {"seq": 1, "digest": digest(stamp(1) + b"hello"), "size": 34, "sent": True, "reply": "intact"}]
        assert subject.socket_stats() == {"bytes_sent": 34, "messages": 1, "framing": "length-prefixed",
                                          "msglen": None}
        assert subject.first_frame == framing.encode_data(1, stamp(1) + b"hello")
    assert programs[0].requests[-1] == proto.Close()


@pytest.mark.parametrize("dribble", [False, True], ids=["whole", "byte-at-a-time"])
def test_fixed_framing_splits_a_body_and_checks_each_reply(dribble: bool) -> None:
    with remote(hello=proto.HelloReply("fixed", 64), dribble=dribble) as (subject, programs):
        subject.connect()
        body = bytes(range(100))
        assert subject.exchange(body) == body and subject.last_exchange_intact
        assert [len(m) for m in programs[0].sent] == [64] * math.ceil(100 / 35) == [64] * 3
        assert [r.reply for r in subject.messages] == ["intact"] * 3
        assert subject.bytes_sent == 192


def test_sends_without_replies_are_answered_first_in_first_out() -> None:
    with remote() as (subject, programs):
        subject.connect()
        assert subject.send(b"one") == 1 and subject.send(b"two") == 2
        assert [r.reply for r in subject.messages] == [None, None]
        assert subject.receive() == b"one" and subject.last_exchange_intact
        assert subject.receive() == b"two" and subject.last_exchange_intact
        assert [r.reply for r in subject.messages] == ["intact", "intact"]


def previous_reply(program: FakeProgram, request: proto.Request) -> bytes | None:
    """Answers each recv with the echo of the message before (the first one correctly)."""
    if not isinstance(request, proto.Recv):
        return None
    n = len(program.replies)
    msg = program.sent[max(n - 1, 0)]
    program.replies.append(msg)
    return proto.encode_response(proto.Received(msg[:4] + b"\x03" + msg[5:]))


def test_a_reply_to_another_message_is_not_intact() -> None:
    with remote(answer=previous_reply) as (subject, _):
        subject.connect()
        assert subject.exchange(b"first") == b"first" and subject.last_exchange_intact
        assert subject.exchange(b"again") == b"first" and subject.last_exchange_intact is False
        assert [r.reply for r in subject.messages] == ["intact", "corrupt"]


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda r: r[:4] + b"\x02" + r[5:], "type DATA"),
    (lambda r: r[:-1], "one byte short"),
    (lambda r: r + b"!", "one byte long"),
    (lambda r: r[:-1] + b"X", "a different body"),
    (lambda r: b"", "nothing"),
])
def test_any_difference_from_the_exact_echo_is_corrupt(mutate: Callable[[bytes], bytes], why: str) -> None:
    def answer(program: FakeProgram, request: proto.Request) -> bytes | None:
        if isinstance(request, proto.Recv):
            msg = program.sent[-1]
            return proto.encode_response(proto.Received(mutate(msg[:4] + b"\x03" + msg[5:])))
        return None

    with remote(answer=answer) as (subject, _):
        subject.connect()
        subject.exchange(b"hello")
        assert subject.last_exchange_intact is False, why
        assert subject.messages[0].reply == "corrupt"


def test_a_reply_when_nothing_is_unanswered_is_not_intact() -> None:
    def answer(program: FakeProgram, request: proto.Request) -> bytes | None:
        if isinstance(request, proto.Recv):
            return proto.encode_response(proto.Received(framing.encode_echo(1, stamp(1) + b"made up")))
        return None

    with remote(answer=answer) as (subject, _):
        subject.connect()
        assert subject.receive() == b"made up" and subject.last_exchange_intact is False


def failing(op: str, line: bytes) -> Behaviour:
    def answer(program: FakeProgram, request: proto.Request) -> bytes | None:
        return line if request.op == op else None
    return answer


def test_a_failure_response_is_a_remote_failure_with_the_program_s_names() -> None:
    line = proto.encode_response(proto.Failure("ConnectionResetError", "ECONNRESET", "peer reset"))
    with remote(answer=failing("recv", line)) as (subject, _):
        subject.connect()
        with pytest.raises(RemoteFailure) as info:
            subject.exchange(b"hello")
    exc = info.value
    assert (exc.error, exc.error_name, exc.errno_name, exc.errno, exc.op, str(exc)) == (
        "ConnectionResetError", "ConnectionResetError", "ECONNRESET", 104, "recv", "peer reset")
    assert exc.as_dict() == {"error": "ConnectionResetError", "message": "peer reset", "errno_name": "ECONNRESET",
                             "op": "recv"}
    assert (exc.kind, exc.phase) == ("ConnectionResetError", "read")
    assert subject.messages[0].sent is True and subject.messages[0].reply is None


def test_a_failed_send_is_recorded_as_not_sent() -> None:
    line = proto.encode_response(proto.Failure("BrokenPipeError", "EPIPE", "[Errno 32] Broken pipe"))
    with remote(answer=failing("send", line)) as (subject, _):
        subject.connect()
        with pytest.raises(RemoteFailure) as info:
            subject.send(b"x")
    assert (info.value.error, info.value.errno_name) == ("BrokenPipeError", "EPIPE")
    assert (subject.messages[0].sent, subject.bytes_sent) == (False, 0)


def test_a_connect_failure_is_a_remote_failure() -> None:
    line = proto.encode_response(proto.Failure("ConnectionRefusedError", "ECONNREFUSED", "refused"))
    with remote(answer=failing("connect", line)) as (subject, _):
        with pytest.raises(RemoteFailure) as info:
            subject.connect()
    assert (info.value.error, info.value.errno_name, info.value.op) == ("ConnectionRefusedError", "ECONNREFUSED",
                                                                        "connect")


@pytest.mark.parametrize(("line", "message"), [
    (b"garbage\n", "recv: a line that is not one JSON object: Expecting value: line 1 column 1 (char 0)"),
    (b'{"ok":true}\n', "recv: recv response: missing data; accepted fields: data, ok"),
    (b'{"ok":true,"data":"AA=="}\n{"ok":true}\n', "recv: more output after the response (12 bytes): a response "
                                                  "to a request that was not asked"),
])
def test_a_malformed_response_is_a_driver_protocol_error(line: bytes, message: str) -> None:
    with remote(answer=failing("recv", line)) as (subject, _):
        subject.connect()
        subject.send(b"x")
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert (info.value.error, str(info.value)) == ("DriverProtocolError", message)
        # The channel is not used again: the next call fails at once, naming the first failure.
        with pytest.raises(RemoteFailure, match="the channel is no longer usable") as again:
            subject.send(b"y")
        assert again.value.error == "DriverProtocolError"


def test_a_program_that_exits_is_driver_exited() -> None:
    with remote(answer=failing("recv", b"EXIT")) as (subject, _):
        subject.connect()
        subject.send(b"x")
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
    assert info.value.error == "DriverExited"
    assert str(info.value) == "recv: the channel ended: the program exited or closed stdout"


def test_hard_timeout_bounds_a_read() -> None:
    def never(program: FakeProgram, request: proto.Request) -> bytes | None:
        return b"" if isinstance(request, proto.Recv) else None   # says nothing at all

    with remote(answer=never, hard_timeout=0.3) as (subject, _):
        subject.connect()
        started = time.monotonic()
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert 0.3 <= time.monotonic() - started < 1.0
    assert (info.value.error, str(info.value)) == ("DriverTimeout", "recv: no response within 0.3 s")


def test_force_unblock_returns_a_blocked_read_at_once() -> None:
    def never(program: FakeProgram, request: proto.Request) -> bytes | None:
        return b"" if isinstance(request, proto.Recv) else None

    with remote(answer=never, hard_timeout=30) as (subject, _):
        subject.connect()
        threading.Timer(0.2, subject.force_unblock).start()
        started = time.monotonic()
        with pytest.raises(RemoteFailure) as info:
            subject.receive()
        assert time.monotonic() - started < 1.0
    assert (info.value.error, str(info.value)) == ("DriverExited", "recv: the channel ended: the lab shut the "
                                                                   "channel (watchdog)")


@pytest.mark.parametrize(("failure", "status"), [
    (proto.Failure("ImportTimeout", None, "importing x.py did not finish within 5 s", "import"), "blocked"),
    (proto.Failure("KeyError", None, "KeyError while importing x.py at line 3: 'A'", "import"), "error"),
])
def test_an_import_failure_at_hello_is_submission_load_failed(failure: proto.Failure, status: str) -> None:
    with remote(hello=failure) as (subject, programs):
        with pytest.raises(SubmissionLoadFailed) as info:
            subject.connect()
    assert (info.value.status, info.value.error, info.value.message) == (status, failure.error, failure.message)
    assert programs[0].requests == [proto.Hello()]   # no connect, and no close for a program that never got ready


def test_probe_says_hello_and_hangs_up() -> None:
    programs: list[FakeProgram] = []

    def dial(timeout: float) -> socket.socket:
        ours, theirs = socket.socketpair()
        programs.append(FakeProgram(theirs, hello=proto.HelloReply("fixed", 1024)))
        return ours

    assert probe(IMPL, dial=dial) == proto.HelloReply("fixed", 1024)
    programs[0].thread.join(2)
    assert programs[0].requests == [proto.Hello()] and not programs[0].thread.is_alive()


def test_probe_raises_for_a_program_that_cannot_load() -> None:
    def dial(timeout: float) -> socket.socket:
        ours, theirs = socket.socketpair()
        FakeProgram(theirs, hello=proto.Failure("SyntaxError", None, "bad", "import"))
        return ours

    with pytest.raises(SubmissionLoadFailed) as info:
        probe(IMPL, dial=dial)
    assert (info.value.status, info.value.error) == ("error", "SyntaxError")


def test_a_program_that_dies_before_hello_is_not_ready() -> None:
    def dial(timeout: float) -> socket.socket:
        ours, theirs = socket.socketpair()
        theirs.close()
        return ours

    with pytest.raises(SubmissionLoadFailed) as info:
        probe(IMPL, dial=dial)
    assert (info.value.status, info.value.error) == ("error", "DriverExited")


def test_the_name_and_nonce_are_checked() -> None:
    from lab.inlab.submission import SubmissionError

    with pytest.raises(SubmissionError, match="use sandbox:NAME"):
        RemoteSubject("sandbox:../x", "h", 1)
    with pytest.raises(ValueError, match="nonce must be 8 bytes; got 2"):
        RemoteSubject(IMPL, "h", 1, nonce=b"ab")
    assert len(RemoteSubject(IMPL, "h", 1).nonce) == 8


def test_close_never_raises_even_on_a_dead_channel() -> None:
    with remote(answer=failing("recv", b"EXIT")) as (subject, programs):
        subject.connect()
        subject.send(b"x")
        with pytest.raises(RemoteFailure):
            subject.receive()
        subject.close()
        subject.close()


def test_messages_are_json_friendly() -> None:
    with remote() as (subject, _):
        subject.connect()
        subject.exchange(b"x")
        assert json.loads(json.dumps(subject.message_log()))[0]["seq"] == 1
