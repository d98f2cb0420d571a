"""The lab protocol's framing, as sans-IO code: bytes in, frames out, no sockets.

TCP delivers a stream, not messages (the HOWTO's "there is no EOT on a
socket"), so every message on the wire says how long it is. A frame is a
5-byte header in network byte order, then the payload::

    +----------------+--------+---------------------+
    | length  uint32 | type u8| payload (length B)  |
    +----------------+--------+---------------------+

``length`` counts the payload only. Types and their payloads:

    HELLO  client→server: 16-byte session id; server→client: uint64 last seq it delivered
    DATA   uint64 sequence number, then the message body
    ECHO   uint64 sequence number, then the body echoed back (doubles as the acknowledgement)
    PING   uint64 nonce (heartbeat)
    PONG   uint64 nonce copied from the PING

The :class:`Decoder` is fed whatever ``recv`` returned, in any split, and hands
back whole frames, or :data:`NEED_DATA` when the next frame is not complete
yet. Feeding ``b""`` means end of stream: then :data:`CLOSED` comes back if the
stream ended on a frame boundary, and :class:`~lab.sockets.errors.IncompleteMessage`
(saying how many bytes of how many arrived) if it ended inside a frame::

    dec = Decoder(max_payload=1 << 20)
    dec.receive_data(chunk)
    while (event := dec.next_event()) is not NEED_DATA:
        if event is CLOSED: ...
        handle(event)

A header announcing more than ``max_payload`` raises FrameTooLarge at once,
before anything is allocated for the payload; an unknown type raises BadFrame.
After an error the decoder stays broken: every later call raises the same error.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from lab.sockets.errors import BadFrame, FrameTooLarge, IncompleteMessage, ProtocolError

HEADER = struct.Struct("!IB")
HEADER_SIZE = HEADER.size
SEQ = struct.Struct("!Q")
SESSION_ID_SIZE = 16
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
MAX_UINT32 = 2**32 - 1


class FrameType(enum.IntEnum):
    HELLO = 1
    DATA = 2
    ECHO = 3
    PING = 4
    PONG = 5


_MIN_PAYLOAD = {FrameType.DATA: SEQ.size, FrameType.ECHO: SEQ.size,
                FrameType.PING: SEQ.size, FrameType.PONG: SEQ.size}


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")
"""The next frame is not complete yet: feed more bytes."""

CLOSED = _Sentinel("CLOSED")
"""The stream ended cleanly, exactly on a frame boundary."""


@dataclasses.dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes

    @property
    def seq(self) -> int:
        """The sequence number (or nonce) that DATA, ECHO, PING and PONG frames start with."""
        return SEQ.unpack_from(self.payload)[0]

    @property
    def body(self) -> bytes:
        """The message body of a DATA or ECHO frame (payload after the sequence number)."""
        return self.payload[SEQ.size:]

    @property
    def wire_size(self) -> int:
        return HEADER_SIZE + len(self.payload)


def _check_max(max_payload: int) -> int:
    if isinstance(max_payload, bool) or not isinstance(max_payload, int) or not 0 < max_payload <= MAX_UINT32:
        raise ValueError(f"max_payload must be an int from 1 to {MAX_UINT32} bytes; got {max_payload!r}")
    return max_payload


def encode(ftype: FrameType | int, payload: bytes = b"", *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """One frame's bytes. Refuses (ValueError) what the peer's decoder would reject."""
    try:
        ftype = FrameType(ftype)
    except ValueError:
        raise ValueError(f"unknown frame type {ftype!r}; accepted: "
                         f"{', '.join(f'{t.name}={t.value}' for t in FrameType)}") from None
    if len(payload) > _check_max(max_payload):
        raise ValueError(f"payload of {len(payload)} bytes exceeds max_payload={max_payload}")
    if len(payload) < _MIN_PAYLOAD.get(ftype, 0):
        raise ValueError(f"{ftype.name} payload needs at least {_MIN_PAYLOAD[ftype]} bytes; got {len(payload)}")
    return HEADER.pack(len(payload), ftype) + payload


def encode_data(seq: int, body: bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    return encode(FrameType.DATA, SEQ.pack(seq) + body, max_payload=max_payload)


def encode_echo(seq: int, body: bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    return encode(FrameType.ECHO, SEQ.pack(seq) + body, max_payload=max_payload)


def encode_ping(nonce: int) -> bytes:
    return encode(FrameType.PING, SEQ.pack(nonce))


def encode_pong(nonce: int) -> bytes:
    return encode(FrameType.PONG, SEQ.pack(nonce))


def encode_hello_request(session_id: bytes) -> bytes:
    if len(session_id) != SESSION_ID_SIZE:
        raise ValueError(f"session id must be {SESSION_ID_SIZE} bytes; got {len(session_id)}")
    return encode(FrameType.HELLO, session_id)


def encode_hello_reply(last_seq: int) -> bytes:
    return encode(FrameType.HELLO, SEQ.pack(last_seq))


class Decoder:
    """Turns a byte stream, fed in arbitrary chunks, into frames."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = _check_max(max_payload)
        self._buf = bytearray()
        self._eof = False
        self._error: ProtocolError | IncompleteMessage | None = None
        self.frames_decoded = 0
        self.bytes_consumed = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf)

    @property
    def at_boundary(self) -> bool:
        """True when no part of a frame is waiting: EOF now would be a clean close."""
        return not self._buf

    @property
    def eof(self) -> bool:
        return self._eof

    def bytes_needed(self) -> int:
        """How many more bytes complete the next frame (at least 1 when a header is partial)."""
        if len(self._buf) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buf)
        length, _ = HEADER.unpack_from(self._buf)
        return max(HEADER_SIZE + length - len(self._buf), 0)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes from the stream; ``b""`` means the stream ended."""
        if self._eof:
            if data:
                raise RuntimeError("receive_data() after end of stream: the decoder was already told of EOF")
            return
        if not data:
            self._eof = True
            return
        self._buf += data

    def next_event(self) -> Frame | _Sentinel:
        """The next whole frame, NEED_DATA, or CLOSED; raises on a protocol error or EOF mid-frame."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if len(buf) >= HEADER_SIZE:
            length, ftype = HEADER.unpack_from(buf)
            if ftype not in _TYPES:
                self._fail(BadFrame(f"unknown frame type {ftype} in header {bytes(buf[:HEADER_SIZE]).hex()}; "
                                    f"accepted: {', '.join(f'{t.name}={t.value}' for t in FrameType)}"))
            if length > self.max_payload:
                self._fail(FrameTooLarge(f"header announces a {length}-byte payload; "
                                         f"the maximum is {self.max_payload}"))
            if length < _MIN_PAYLOAD.get(ftype, 0):
                self._fail(BadFrame(f"{FrameType(ftype).name} frame of {length} bytes is shorter than "
                                    f"its {_MIN_PAYLOAD[ftype]}-byte minimum"))
            end = HEADER_SIZE + length
            if len(buf) >= end:
                # Through a view: a bytearray slice is itself a copy, and a 1 MiB frame
                # copied twice cost the robust client 3x the CPU of a plain recv loop.
                with memoryview(buf) as view:
                    payload = bytes(view[HEADER_SIZE:end])
                del buf[:end]
                self.frames_decoded += 1
                self.bytes_consumed += end
                return Frame(FrameType(ftype), payload)
        if not self._eof:
            return NEED_DATA
        if not buf:
            return CLOSED
        if len(buf) < HEADER_SIZE:
            self._fail(IncompleteMessage(f"stream ended after {len(buf)} of the {HEADER_SIZE} header bytes",
                                         received=len(buf), expected=None, phase="read"))
        length, _ = HEADER.unpack_from(buf)
        self._fail(IncompleteMessage(f"stream ended after {len(buf)} of {HEADER_SIZE + length} bytes of a frame",
                                     received=len(buf), expected=HEADER_SIZE + length, phase="read"))
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, error: ProtocolError | IncompleteMessage) -> None:
        self._error = error
        raise error

    def __iter__(self):
        """Yield every frame available now; stop at NEED_DATA or CLOSED."""
        while True:
            event = self.next_event()
            if isinstance(event, _Sentinel):
                return
            yield event


_TYPES = frozenset(int(t) for t in FrameType)

__all__ = [
    "HEADER", "HEADER_SIZE", "SEQ", "SESSION_ID_SIZE", "DEFAULT_MAX_PAYLOAD", "FrameType", "Frame",
    "NEED_DATA", "CLOSED", "Decoder", "encode", "encode_data", "encode_echo", "encode_ping",
    "encode_pong", "encode_hello_request", "encode_hello_reply",
]
