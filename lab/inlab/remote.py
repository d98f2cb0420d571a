"""The judge's side of the sandbox: a Subject whose MySocket runs in another process, behind the driver protocol.

Submitted code never runs in the in-lab runner's process (it could rewrite its own verdict
there). It runs in the sandbox container, one fresh program per connection to the driver port
(:mod:`lab.sandbox.launcher`); :class:`RemoteSubject` dials it and speaks the driver protocol
(:mod:`lab.sandbox.protocol`), so the runner drives it like any other subject::

    subject = RemoteSubject("sandbox:mine-1a2b3c4d", "toxiproxy", 7000, hard_timeout=watchdog + 30)
    subject.connect()                      # dial, hello (SubmissionLoadFailed if it cannot load), connect
    subject.exchange(body)
    subject.last_exchange_intact           # True only if every reply was the exact ECHO of its message
    subject.force_unblock()                # from the watchdog: a blocked read returns at once

The judge builds every message itself. Each body starts with a 16-byte stamp, an 8-byte
per-subject nonce and the 8-byte message counter, so no two messages are alike and each can be
found in the server's delivery record by its digest (:attr:`RemoteSubject.messages`); that record,
not the program's word, is what later shows whether the messages really reached the server. A
reply is intact only when it is byte for byte the ECHO frame of the oldest unanswered message.

Every read of a response has a deadline (8 s for hello, ``hard_timeout`` for the rest). A
failure the program reports becomes :class:`RemoteFailure` with the program's own error name;
the judge's own findings use the names ``DriverProtocolError`` (a malformed response),
``DriverExited`` (the channel ended), ``DriverTimeout`` (no response in time) and
``DriverUnavailable`` (the sandbox could not be dialled: the lab's fault, not the program's).

Runs inside the client container: standard library (and the lab's own modules) only.
"""

from __future__ import annotations

import collections
import dataclasses
import errno as errno_mod
import hashlib
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, NoReturn

from lab.addresses import DRIVER_HOST, DRIVER_PORT
from lab.inlab.submission import STAMP_SIZE, SubmissionLoadFailed, parse_impl
from lab.inlab.subjects import Subject
from lab.sandbox import protocol as proto
from lab.sockets import framing
from lab.sockets.errors import LabError
from lab.sockets.naive import make_message

DIAL_TIMEOUT_S = 15.0        # the sandbox may still be starting when the first subject dials
HELLO_TIMEOUT_S = 8.0        # the adapter's bounded import (5 s) and a margin
CLOSE_TIMEOUT_S = 2.0
NONCE_SIZE = 8
COUNTER = struct.Struct("!Q")
OVERHEAD = framing.HEADER_SIZE + framing.SEQ.size + STAMP_SIZE
"""Bytes of every message that are not the workload's data: header, sequence number, stamp."""
PAD = b"."
DIGEST_SIZE = 8
READ_CHUNK = 65536

DRIVER_PROTOCOL_ERROR = "DriverProtocolError"
DRIVER_EXITED = "DriverExited"
DRIVER_TIMEOUT = "DriverTimeout"
DRIVER_UNAVAILABLE = "DriverUnavailable"


# The step of the conversation each request is, in lab.sockets.errors' terms.
_PHASES = {"connect": "connect", "send": "write", "recv": "read", "close": "close"}


class RemoteFailure(LabError):
    """A call that failed in the program, or a channel the judge could not use; ``str()`` is the message.

    A :class:`~lab.sockets.errors.LabError` (the errors the lab observes in a conversation), whose
    name is the one the program gave rather than its own class's: see :attr:`kind`.

    error       the failure's name: the program's (e.g. "ConnectionResetError") or the judge's
                ("DriverProtocolError", "DriverExited", "DriverTimeout", "DriverUnavailable")
    errno_name  the program's errno name ("ECONNRESET"), or None; ``errno`` is its number here
    op          the request that failed ("connect", "send", "recv", ...), when known
    """

    def __init__(self, error: str, message: str = "", *, errno_name: str | None = None, op: str | None = None) -> None:
        value = getattr(errno_mod, errno_name, None) if errno_name else None
        super().__init__(message, phase=_PHASES.get(op or ""), errno=value if isinstance(value, int) else None)
        self.error, self.errno_name, self.op = error, errno_name, op

    @property
    def error_name(self) -> str:
        return self.error

    @property
    def kind(self) -> str:
        return self.error

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.error, "message": self.message}
        if self.errno_name is not None:
            out["errno_name"] = self.errno_name
        if self.op is not None:
            out["op"] = self.op
        return out


class DriverUnavailable(RemoteFailure):
    """Nothing answered on the driver port in time: the sandbox is down, which is the lab's failure."""

    def __init__(self, message: str) -> None:
        super().__init__(DRIVER_UNAVAILABLE, message)


# Messages: built, stamped and checked without any I/O -------------------------------------------------
def digest(stamped: bytes) -> str:
    """How a message is named in the server's delivery record: its body after the sequence number."""
    return hashlib.blake2b(stamped, digest_size=DIGEST_SIZE).hexdigest()


@dataclasses.dataclass(frozen=True)
class Message:
    seq: int
    data: bytes        # the workload's part, before any padding
    stamped: bytes     # the frame's payload after the sequence number: stamp, data, padding
    frame: bytes       # the whole DATA frame handed to mysend

    @property
    def echo(self) -> bytes:
        """The one reply that counts as intact: the ECHO frame with the same sequence number and body."""
        return framing.encode_echo(self.seq, self.stamped)


@dataclasses.dataclass
class MessageRecord:
    seq: int
    digest: str
    size: int                       # frame bytes
    sent: bool = False              # the send op was answered ok (mysend returned)
    reply: str | None = None        # "intact" | "corrupt" | None (no reply taken)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MAX_MESSAGES_PER_CALL = 4096
"""The most messages one send or exchange becomes (64-byte messages: 256 KiB on the wire)."""


class Stamper:
    """Cuts a workload body into the messages one framing allows, stamped and numbered."""

    def __init__(self, nonce: bytes, framing_name: str, msglen: int | None) -> None:
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes; got {len(nonce)}")
        if framing_name == "fixed":
            if msglen is None or msglen < OVERHEAD:
                raise ValueError(f"fixed framing needs msglen >= {OVERHEAD}; got {msglen!r}")
            self.room = msglen - OVERHEAD
        elif framing_name == "length-prefixed":
            # One protocol line carries at most MAX_DATA bytes: a bigger body goes out as several messages.
            self.room = proto.MAX_DATA - OVERHEAD
        else:
            raise ValueError(f"framing {framing_name!r}; accepted: fixed, length-prefixed")
        self.nonce, self.framing, self.msglen = nonce, framing_name, msglen
        self.seq = 0

    def chunks(self, body: bytes) -> list[bytes]:
        """The workload data of each message for ``body``: at least one, at most MAX_MESSAGES_PER_CALL.

        Beyond that many, small fixed messages would make the driver's own round trips, not the
        network, what a run measures; the bytes a scenario needs to reach its fault are checked
        separately (REACH_BYTES in the scenario, "did not reach the fault" in the verdict).
        """
        if self.room == 0:
            return [b""]   # a fixed message with room for the stamp only: one per call
        end = min(max(len(body), 1), self.room * MAX_MESSAGES_PER_CALL)
        return [body[i:i + self.room] for i in range(0, end, self.room)]

    def messages(self, body: bytes) -> list[Message]:
        out = []
        for data in self.chunks(body):
            self.seq += 1
            stamped = self.nonce + COUNTER.pack(self.seq) + data
            if self.framing == "fixed":
                stamped = stamped.ljust(STAMP_SIZE + self.room, PAD)
            out.append(Message(self.seq, data, stamped, make_message(self.seq, stamped)))
        return out


def data_of(reply: bytes) -> bytes:
    """What a reply carries after header, sequence number and stamp (whatever it is)."""
    return reply[OVERHEAD:]


# The channel ------------------------------------------------------------------------------------------
def dial_driver(timeout: float, *, host: str = DRIVER_HOST, port: int = DRIVER_PORT) -> socket.socket:
    """A connection to the sandbox's launcher, retried until ``timeout`` s (it may still be starting)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        left = deadline - time.monotonic()
        try:
            sock = socket.create_connection((host, port), timeout=max(min(left, 2.0), 0.01))
        except OSError as exc:
            if time.monotonic() + delay >= deadline:
                raise DriverUnavailable(f"nothing answered on the driver port {host}:{port} within "
                                        f"{timeout:g} s: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        # Requests and responses are single small writes each way: no reason to wait for more.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class DriverChannel:
    """One connection to one program: a request out, its one response back, each bounded."""

    def __init__(self, sock: socket.socket, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.sock = sock
        self.clock = clock
        self.reader = proto.LineReader()
        self.broken: RemoteFailure | None = None
        self.shut_by_lab = False

    def request(self, request: proto.Request, timeout: float) -> proto.Response:
        """Send one request and return its response; raises RemoteFailure for a dead or misbehaving channel."""
        op = request.op
        if self.broken is not None:
            raise RemoteFailure(self.broken.error, f"{op}: the channel is no longer usable ({self.broken.message})",
                                op=op)
        if self.reader.buffered:
            self._break(DRIVER_PROTOCOL_ERROR, f"{op}: the program wrote {self.reader.buffered} bytes nobody asked "
                                               "for", op)
        deadline = self.clock() + timeout
        try:
            self._send(proto.encode_request(request), deadline, op, timeout)
            response = proto.decode_response(op, self._read_line(deadline, op, timeout))
        except proto.ProtocolViolation as exc:
            self._break(DRIVER_PROTOCOL_ERROR, f"{op}: {exc}", op)
        if self.reader.buffered:
            self._break(DRIVER_PROTOCOL_ERROR, f"{op}: more output after the response ({self.reader.buffered} "
                                               "bytes): a response to a request that was not asked", op)
        return response

    def _left(self, deadline: float, op: str, timeout: float) -> float:
        left = deadline - self.clock()
        if left <= 0:
            self._break(DRIVER_TIMEOUT, f"{op}: no response within {timeout:g} s", op)
        return left

    def _send(self, line: bytes, deadline: float, op: str, timeout: float) -> None:
        try:
            self.sock.settimeout(self._left(deadline, op, timeout))
            self.sock.sendall(line)
        except TimeoutError:
            self._break(DRIVER_TIMEOUT, f"{op}: the program took no request within {timeout:g} s", op)
        except OSError as exc:
            self._exited(op, f"sending the request failed: {exc}")

    def _read_line(self, deadline: float, op: str, timeout: float) -> bytes:
        while (line := self.reader.next_line()) is None:
            try:
                self.sock.settimeout(self._left(deadline, op, timeout))
                chunk = self.sock.recv(READ_CHUNK)
            except TimeoutError:
                self._break(DRIVER_TIMEOUT, f"{op}: no response within {timeout:g} s", op)
            except OSError as exc:
                self._exited(op, f"reading the response failed: {exc}")
            if not chunk:
                self._exited(op, "the channel ended" + (f" inside a response ({self.reader.buffered} bytes of it)"
                                                        if self.reader.buffered else ""))
            self.reader.receive_data(chunk)
        return line

    def _exited(self, op: str, what: str) -> NoReturn:
        why = "the lab shut the channel (watchdog)" if self.shut_by_lab else "the program exited or closed stdout"
        self._break(DRIVER_EXITED, f"{op}: {what}: {why}", op)

    def _break(self, error: str, message: str, op: str) -> NoReturn:
        # After any of these the next line on the channel could be taken for the wrong request's answer.
        failure = RemoteFailure(error, message, op=op)
        self.broken = self.broken or failure
        self.shutdown()
        raise failure

    def shutdown(self) -> None:
        """Both directions shut: a read blocked in another thread returns at once, the program reads EOF."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut, or never connected

    def force_unblock(self) -> None:
        self.shut_by_lab = True
        self.shutdown()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _hello(channel: DriverChannel) -> proto.HelloReply:
    """Hello with its own deadline; anything but a good reply means the program could not get ready."""
    try:
        reply = channel.request(proto.Hello(), HELLO_TIMEOUT_S)
    except RemoteFailure as exc:
        raise SubmissionLoadFailed("blocked" if exc.error == DRIVER_TIMEOUT else "error", exc.error,
                                   f"the program did not answer hello: {exc.message}") from None
    if isinstance(reply, proto.Failure):
        status = "blocked" if reply.error == "ImportTimeout" else "error"
        raise SubmissionLoadFailed(status, reply.error, reply.message or f"hello failed: {reply.error}")
    assert isinstance(reply, proto.HelloReply)   # parse_response gives nothing else for hello
    return reply


def probe(impl: str, *, dial: Callable[[float], socket.socket] | None = None) -> proto.HelloReply:
    """Dial, hello, close: raises SubmissionLoadFailed when the program cannot get ready (before the lab is touched)."""
    parse_impl(impl)
    channel = DriverChannel((dial or dial_driver)(DIAL_TIMEOUT_S))
    try:
        return _hello(channel)
    finally:
        channel.shutdown()
        channel.close()


# The subject ------------------------------------------------------------------------------------------
class RemoteSubject(Subject):
    """A submission in the sandbox, driven through the driver protocol (see the module's docstring)."""

    def __init__(self, impl: str, host: str, port: int, *, dial: Callable[[float], socket.socket] | None = None,
                 hard_timeout: float = 120.0, nonce: bytes | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(host, port)
        self.impl = impl
        self.name = parse_impl(impl)
        self._dial = dial or dial_driver
        self.hard_timeout = hard_timeout
        self.nonce = nonce if nonce is not None else os.urandom(NONCE_SIZE)
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes; got {len(self.nonce)}")
        self.clock = clock
        self.framing: str | None = None
        self.msglen: int | None = None
        self.hello: proto.HelloReply | None = None
        self.messages: list[MessageRecord] = []
        self.bytes_sent = 0
        self.last_exchange_intact = False
        self.first_frame: bytes | None = None      # the first message's bytes, to recognise them in a server's log
        self._stamper: Stamper | None = None
        self._unanswered: collections.deque[tuple[Message, MessageRecord]] = collections.deque()
        self._channel: DriverChannel | None = None
        self._unblocked = False

    # The runner's calls ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Dial the launcher and wait for the program's hello: its process started and its module
        imported. The runner calls this before the program's time bound starts (that is the
        sandbox's start-up, not the program meeting the fault); connect() calls it if nobody has."""
        if self._channel is not None:
            return
        channel = DriverChannel(self._dial(DIAL_TIMEOUT_S), clock=self.clock)
        self._channel = channel
        if self._unblocked:   # the watchdog fired while we dialled
            channel.force_unblock()
        self.hello = _hello(channel)
        self.framing, self.msglen = self.hello.framing, self.hello.msglen
        self._stamper = Stamper(self.nonce, self.hello.framing, self.hello.msglen)

    def connect(self) -> None:
        self.prepare()
        self._expect_ack(proto.Connect(self.host, self.port))

    def send(self, body: bytes) -> int:
        for message in self._stamp(body):
            self._send_message(message)
        return self.seq

    def receive(self) -> bytes:
        intact, data = self._receive_one()
        self.last_exchange_intact = intact
        return data

    def exchange(self, body: bytes) -> bytes:
        self.last_exchange_intact = False
        intact, parts = True, []
        for message in self._stamp(body):
            self._send_message(message)
            ok, data = self._receive_one()
            intact = intact and ok
            parts.append(data)
        self.last_exchange_intact = intact
        return body if intact else b"".join(parts)

    def expected_echo(self, body: bytes) -> bytes:
        """What exchange() returns for an intact round trip: the body itself (the check is last_exchange_intact)."""
        return body

    def force_unblock(self) -> None:
        self._unblocked = True
        if self._channel is not None:
            self._channel.force_unblock()

    def close(self) -> None:
        channel = self._channel
        if channel is None:
            return
        try:
            if channel.broken is None and self.hello is not None:
                channel.request(proto.Close(), CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001, S110 - a failing close is not what the scenario judges
            pass
        finally:
            channel.shutdown()
            channel.close()

    def socket_stats(self) -> dict[str, Any]:
        return {"bytes_sent": self.bytes_sent, "messages": len(self.messages), "framing": self.framing,
                "msglen": self.msglen}

    def message_log(self) -> list[dict[str, Any]]:
        """Every message as a plain dict, for the report and the check against the server's delivery record."""
        return [m.as_dict() for m in self.messages]

    # Inside ------------------------------------------------------------------------------------------
    def _stamp(self, body: bytes) -> list[Message]:
        if self._stamper is None:
            raise RuntimeError("connect() first")
        messages = self._stamper.messages(body)
        self.seq = self._stamper.seq
        return messages

    def _request(self, request: proto.Request) -> proto.Response:
        if self._channel is None:
            raise RuntimeError("connect() first")
        response = self._channel.request(request, self.hard_timeout)
        if isinstance(response, proto.Failure):
            raise RemoteFailure(response.error, response.message, errno_name=response.errno, op=request.op)
        return response

    def _expect_ack(self, request: proto.Request) -> None:
        self._request(request)   # parse_response gives Ack (or Failure, raised) for connect, send, close

    def _send_message(self, message: Message) -> None:
        record = MessageRecord(message.seq, digest(message.stamped), len(message.frame))
        if self.first_frame is None:
            self.first_frame = message.frame
        self.messages.append(record)
        self._expect_ack(proto.Send(message.frame))
        record.sent = True
        self.bytes_sent += record.size
        self._unanswered.append((message, record))

    def _receive_one(self) -> tuple[bool, bytes]:
        response = self._request(proto.Recv())
        assert isinstance(response, proto.Received)
        reply = response.data
        if not self._unanswered:
            return False, data_of(reply)   # a reply to nothing is never intact
        message, record = self._unanswered.popleft()
        intact = reply == message.echo
        record.reply = "intact" if intact else "corrupt"
        return intact, message.data if intact else data_of(reply)


__all__ = ["DIAL_TIMEOUT_S", "MAX_MESSAGES_PER_CALL", "HELLO_TIMEOUT_S", "CLOSE_TIMEOUT_S", "NONCE_SIZE", "OVERHEAD", "DRIVER_PROTOCOL_ERROR",
           "DRIVER_EXITED", "DRIVER_TIMEOUT", "DRIVER_UNAVAILABLE", "RemoteFailure", "DriverUnavailable", "Message",
           "MessageRecord", "Stamper", "digest", "data_of", "dial_driver", "DriverChannel", "probe", "RemoteSubject"]
