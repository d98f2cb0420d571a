"""The driver protocol, version 1, as sans-IO code: the judge and a submitted program speak it.

One JSON object per line over the program's stdin and stdout; the judge sends a request and
reads its one response before the next (the contract is /tmp/spec/driver-protocol.md, mirrored
in docs/grading.md). Nothing here touches a socket or a file descriptor: bytes go into a
:class:`LineReader`, whole lines come out; lines become typed requests and responses through
decoders that accept exactly the spec's shapes and raise :class:`ProtocolViolation` (saying
what is accepted) for anything else::

    reader = LineReader()
    reader.receive_data(chunk)              # any split; b"" is never fed (EOF is the caller's)
    while (line := reader.next_line()) is not None:
        request = decode_request(line)      # the adapter's side
        ...
    response = decode_response("recv", line)    # the judge's side: Received(data=...) or Failure(...)

Encoders refuse (ValueError) what the other side's decoder would reject, so a bug shows up
where it is made. Runs on both sides of the sandbox: standard library only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import errno as errno_mod
import json
import re
from typing import Any, Literal, Union

from lab.inlab.submission import FRAMINGS, MAX_MSGLEN, MIN_MSGLEN
from lab.sockets.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_LINE = 4 * 1024 * 1024
"""The longest line either side accepts, newline included."""
MAX_MESSAGE_CHARS = 1000
"""A failure's message is cut to this many characters (the rest would only bloat reports)."""
MAX_DATA = (MAX_LINE - 64) // 4 * 3
"""The most bytes one send or recv line can carry: base64 makes 4 characters of 3 bytes, and the
JSON around it stays under 64 characters. The judge never builds a bigger message."""
OPS = ("hello", "connect", "send", "recv", "close")
PHASES = ("import",)
ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}\Z")
MAX_HOST = 253   # the longest DNS name

Op = Literal["hello", "connect", "send", "recv", "close"]


class ProtocolViolation(ProtocolError):
    """Bytes or JSON that are not the driver protocol; the message says what was expected.

    A :class:`~lab.sockets.errors.ProtocolError` like any bytes that are not the lab's protocol.
    """


# Requests -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Hello:
    protocol: int = PROTOCOL_VERSION
    op: Op = dataclasses.field(default="hello", init=False)


@dataclasses.dataclass(frozen=True)
class Connect:
    host: str
    port: int
    op: Op = dataclasses.field(default="connect", init=False)


@dataclasses.dataclass(frozen=True)
class Send:
    data: bytes
    op: Op = dataclasses.field(default="send", init=False)


@dataclasses.dataclass(frozen=True)
class Recv:
    op: Op = dataclasses.field(default="recv", init=False)


@dataclasses.dataclass(frozen=True)
class Close:
    op: Op = dataclasses.field(default="close", init=False)


Request = Union[Hello, Connect, Send, Recv, Close]


# Responses ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HelloReply:
    framing: str
    msglen: int | None = None
    protocol: int = PROTOCOL_VERSION


@dataclasses.dataclass(frozen=True)
class Ack:
    """``{"ok": true}``: the answer to connect, send and close."""


@dataclasses.dataclass(frozen=True)
class Received:
    data: bytes


@dataclasses.dataclass(frozen=True)
class Failure:
    """How the program reports that the conversation failed (or, with phase "import", that it never got ready)."""

    error: str
    errno: str | None = None
    message: str = ""
    phase: str | None = None


Response = Union[HelloReply, Ack, Received, Failure]

_REQUEST_FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"op", "protocol"}), "connect": frozenset({"op", "host", "port"}),
    "send": frozenset({"op", "data"}), "recv": frozenset({"op"}), "close": frozenset({"op"}),
}
_FAILURE_FIELDS = frozenset({"ok", "error", "errno", "message", "phase"})


def is_errno_name(name: object) -> bool:
    """True for a symbolic errno name this (Linux) system defines, aliases such as EWOULDBLOCK included."""
    return (isinstance(name, str) and name.startswith("E") and name.isupper()
            and isinstance(getattr(errno_mod, name, None), int))


def is_error_name(name: object) -> bool:
    return isinstance(name, str) and ERROR_NAME.match(name) is not None


# Lines ----------------------------------------------------------------------------------------------
class LineReader:
    """Turns bytes fed in any split into whole lines (without their b"\\n").

    A line longer than ``max_line`` (newline included) raises ProtocolViolation as soon as
    that is certain, before the rest of it is buffered; the reader then stays broken and
    every later call raises the same error. Bytes after the last newline are kept.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if isinstance(max_line, bool) or not isinstance(max_line, int) or max_line < 1:
            raise ValueError(f"max_line must be a positive int; got {max_line!r}")
        self.max_line = max_line
        self._buf = bytearray()
        self._scanned = 0          # bytes of _buf known to hold no newline: a long line is searched once
        self._error: ProtocolViolation | None = None
        self.lines_read = 0

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a returned line."""
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        self._buf += data

    def next_line(self) -> bytes | None:
        """The next whole line, or None until its newline arrives; raises ProtocolViolation on a long line."""
        if self._error is not None:
            raise self._error
        end = self._buf.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buf)
            if len(self._buf) >= self.max_line:
                # Even a newline in the next byte would make the line longer than allowed.
                self._fail(len(self._buf) + 1, complete=False)
            return None
        if end + 1 > self.max_line:
            self._fail(end + 1, complete=True)
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        self._scanned = 0
        self.lines_read += 1
        return line

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """receive_data() then every whole line available now."""
        self.receive_data(data)
        lines = []
        while (line := self.next_line()) is not None:
            lines.append(line)
        return lines

    def _fail(self, size: int, *, complete: bool) -> None:
        what = f"a line of {size} bytes" if complete else f"a line of at least {size} bytes"
        self._error = ProtocolViolation(f"{what} (newline included); the driver protocol allows at most "
                                        f"{self.max_line}")
        raise self._error


def _load(line: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ProtocolViolation(f"key {key!r} appears twice in one object")
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise ProtocolViolation(f"{name} is not JSON")

    try:
        obj = json.loads(line.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except UnicodeDecodeError as exc:
        raise ProtocolViolation(f"a line that is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ProtocolViolation("a line nested too deeply to be a driver message") from None
    except ValueError as exc:   # json.JSONDecodeError, and ints too long to convert
        raise ProtocolViolation(f"a line that is not one JSON object: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"a line holding a JSON {type(obj).__name__}, not an object")
    return obj


def _dump(obj: dict[str, Any]) -> bytes:
    line = json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"a {len(line)}-byte line exceeds MAX_LINE ({MAX_LINE})")
    return line


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where}: data must be a base64 string; got {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ProtocolViolation(f"{where}: data is not standard base64 (A-Z a-z 0-9 + /, '=' padding): "
                                f"{exc}") from None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fields(obj: dict[str, Any], required: frozenset[str], where: str, optional: frozenset[str] = frozenset()) -> None:
    missing = sorted(required - obj.keys())
    extra = sorted(obj.keys() - required - optional)
    if missing or extra:
        accepted = ", ".join(sorted(required)) + (f" (optionally {', '.join(sorted(optional))})" if optional else "")
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
        raise ProtocolViolation(f"{where}: {'; '.join(problems)}; accepted fields: {accepted}")


# Requests: encode (judge) and decode (program) ---------------------------------------------------------
def encode_request(request: Request) -> bytes:
    if isinstance(request, Hello):
        return _dump({"op": "hello", "protocol": request.protocol})
    if isinstance(request, Connect):
        _check_address(request.host, request.port, ValueError)
        return _dump({"op": "connect", "host": request.host, "port": request.port})
    if isinstance(request, Send):
        if len(request.data) > MAX_DATA:
            raise ValueError(f"a {len(request.data)}-byte message exceeds MAX_DATA ({MAX_DATA})")
        return _dump({"op": "send", "data": base64.b64encode(request.data).decode("ascii")})
    if isinstance(request, (Recv, Close)):
        return _dump({"op": request.op})
    raise TypeError(f"not a driver request: {request!r}")


def _check_address(host: Any, port: Any, error: type[Exception]) -> None:
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST:
        raise error(f"connect: host must be a string of 1 to {MAX_HOST} characters; got {host!r}"[:300])
    if not _int(port) or not 0 < port < 65536:
        raise error(f"connect: port must be an int from 1 to 65535; got {port!r}"[:300])


def parse_request(obj: Any) -> Request:
    """A request from its JSON object, checked against the spec; raises ProtocolViolation."""
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"a request is a JSON object; got {type(obj).__name__}")
    op = obj.get("op")
    if op not in _REQUEST_FIELDS:
        raise ProtocolViolation(f"unknown op {op!r}; accepted: {', '.join(OPS)}"[:300])
    _fields(obj, _REQUEST_FIELDS[op], f"{op} request")
    if op == "hello":
        protocol = obj["protocol"]
        if not _int(protocol) or protocol != PROTOCOL_VERSION:
            raise ProtocolViolation(f"hello: protocol {protocol!r} is not supported; accepted: {PROTOCOL_VERSION}"
                                    [:300])
        return Hello(protocol)
    if op == "connect":
        _check_address(obj["host"], obj["port"], ProtocolViolation)
        return Connect(obj["host"], obj["port"])
    if op == "send":
        return Send(_b64(obj["data"], "send request"))
    return Recv() if op == "recv" else Close()


def decode_request(line: bytes) -> Request:
    return parse_request(_load(line))


# Responses: encode (program) and decode (judge) --------------------------------------------------------
def encode_response(response: Response) -> bytes:
    if isinstance(response, HelloReply):
        _check_hello(response.protocol, response.framing, response.msglen, ValueError)
        obj: dict[str, Any] = {"ok": True, "protocol": response.protocol, "framing": response.framing}
        if response.msglen is not None:
            obj["msglen"] = response.msglen
        return _dump(obj)
    if isinstance(response, Ack):
        return _dump({"ok": True})
    if isinstance(response, Received):
        if len(response.data) > MAX_DATA:
            raise ValueError(f"a {len(response.data)}-byte reply exceeds MAX_DATA ({MAX_DATA})")
        return _dump({"ok": True, "data": base64.b64encode(response.data).decode("ascii")})
    if isinstance(response, Failure):
        if not is_error_name(response.error):
            raise ValueError(f"error name {response.error!r} does not match {ERROR_NAME.pattern}")
        if response.errno is not None and not is_errno_name(response.errno):
            raise ValueError(f"errno {response.errno!r} is not an errno name")
        if response.phase is not None and response.phase not in PHASES:
            raise ValueError(f"phase {response.phase!r}; accepted: {', '.join(PHASES)}")
        obj = {"ok": False, "error": response.error, "errno": response.errno,
               "message": response.message[:MAX_MESSAGE_CHARS]}
        if response.phase is not None:
            obj["phase"] = response.phase
        return _dump(obj)
    raise TypeError(f"not a driver response: {response!r}")


def _check_hello(protocol: Any, framing: Any, msglen: Any, error: type[Exception]) -> None:
    if not _int(protocol) or protocol != PROTOCOL_VERSION:
        raise error(f"hello reply: protocol {protocol!r}; the judge speaks {PROTOCOL_VERSION}"[:300])
    if framing not in FRAMINGS:
        raise error(f"hello reply: framing {framing!r}; accepted: {', '.join(FRAMINGS)}"[:300])
    if framing == "fixed":
        if not _int(msglen) or not MIN_MSGLEN <= msglen <= MAX_MSGLEN:
            raise error(f"hello reply: framing 'fixed' needs msglen, an int from {MIN_MSGLEN} to {MAX_MSGLEN}; "
                        f"got {msglen!r}"[:300])
    elif msglen is not None:
        raise error(f"hello reply: msglen is only for framing 'fixed'; got msglen {msglen!r} with "
                    f"{framing!r}"[:300])


def parse_response(op: str, obj: Any) -> Response:
    """The response to an ``op`` request from its JSON object, checked against the spec; raises ProtocolViolation."""
    if op not in _REQUEST_FIELDS:
        raise ValueError(f"unknown op {op!r}; accepted: {', '.join(OPS)}")
    where = f"{op} response"
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"{where}: a JSON object is expected; got {type(obj).__name__}")
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolViolation(f"{where}: \"ok\" must be true or false; got {ok!r}"[:300])
    if not ok:
        return _parse_failure(op, obj, where)
    if op == "hello":
        _fields(obj, frozenset({"ok", "protocol", "framing"}), where, frozenset({"msglen"}))
        msglen = obj.get("msglen")
        if "msglen" in obj and msglen is None:
            raise ProtocolViolation(f"{where}: msglen, when given, is an int; got null")
        _check_hello(obj["protocol"], obj["framing"], msglen, ProtocolViolation)
        return HelloReply(obj["framing"], msglen, obj["protocol"])
    if op == "recv":
        _fields(obj, frozenset({"ok", "data"}), where)
        return Received(_b64(obj["data"], where))
    _fields(obj, frozenset({"ok"}), where)
    return Ack()


def _parse_failure(op: str, obj: dict[str, Any], where: str) -> Failure:
    _fields(obj, frozenset({"ok", "error"}), f"{where} (failure)", _FAILURE_FIELDS - {"ok", "error"})
    error, errno_name = obj["error"], obj.get("errno")
    if not is_error_name(error):
        raise ProtocolViolation(f"{where}: error must be a name matching {ERROR_NAME.pattern}; got {error!r}"[:300])
    if errno_name is not None and not is_errno_name(errno_name):
        raise ProtocolViolation(f"{where}: errno must be a Linux errno name such as 'ECONNRESET', or null; "
                                f"got {errno_name!r}"[:300])
    message = obj.get("message", "")
    if not isinstance(message, str):
        raise ProtocolViolation(f"{where}: message must be a string; got {type(message).__name__}")
    phase = obj.get("phase")
    if "phase" in obj:
        if phase not in PHASES:
            raise ProtocolViolation(f"{where}: phase {phase!r}; accepted: {', '.join(map(repr, PHASES))}"[:300])
        if op != "hello":
            raise ProtocolViolation(f"{where}: phase is only for the hello response")
    return Failure(error, errno_name, message[:MAX_MESSAGE_CHARS], phase)


def decode_response(op: str, line: bytes) -> Response:
    return parse_response(op, _load(line))


__all__ = ["PROTOCOL_VERSION", "MAX_LINE", "MAX_MESSAGE_CHARS", "MAX_DATA", "OPS", "PHASES", "ERROR_NAME",
           "ProtocolViolation", "Hello", "Connect", "Send", "Recv", "Close", "Request", "HelloReply", "Ack",
           "Received", "Failure", "Response", "LineReader", "is_errno_name", "is_error_name", "encode_request",
           "parse_request", "decode_request", "encode_response", "parse_response", "decode_response"]
