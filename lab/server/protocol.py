"""The server side of the lab protocol for one connection, as sans-IO code.

Both servers (thread-per-connection and ``selectors``) drive this same object,
so they cannot disagree about the protocol; they differ only in how they wait.
The driver feeds what ``recv`` returned, asks the core to act on it, and sends
what the core queued::

    core = ServerConnection(conn_id, log, server.behaviour, emit=emit)
    core.process()                       # a behaviour may end the connection at once
    while core.closing is None:
        if core.wants_read:
            core.receive_data(sock.recv(65536))   # b"" means EOF
        core.process()
        send_all(core.data_to_send())
    close the socket the way ``core.closing`` says ("abort" means RST)

Rules it implements: HELLO may only come first and binds the connection to a
session (reply: last seq delivered for it); DATA is delivered once per
(session, seq) and always answered by ECHO, which goes out only after the
delivery is on record; PING gets PONG. A protocol error ends this connection
only, and so does EOF in the middle of a frame.

The core also keeps the first :data:`HEAD_SIZE` bytes the connection ever
received (``head``) and the total (``received``), so that a rejection can be
shown to the grading judge as what was really sent (see ``rejection()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from lab.sockets.errors import BadFrame, IncompleteMessage, LabError, ProtocolError
from lab.sockets.framing import (CLOSED, DEFAULT_MAX_PAYLOAD, NEED_DATA, SESSION_ID_SIZE, Decoder, Frame, FrameType,
                         encode_echo, encode_hello_reply, encode_pong)
from lab.server.behaviour import Behaviour
from lab.server.log import DeliveryLog

Closing = Literal["eof", "close", "abort", "error"]
"""Why the connection is ending: peer's clean EOF, behaviour close (FIN), behaviour abort (RST), an error."""

Emit = Callable[..., None]
HEAD_SIZE = 64
"""Bytes kept from the start of every connection: enough to show a misframed header and its neighbours."""
REJECTED = (ProtocolError, IncompleteMessage)
"""The errors that mean "what this peer sent is not the lab protocol" (a rejection)."""


def _no_emit(event: str, **fields: Any) -> None:
    pass


class ServerConnection:
    """Protocol state of one server-side connection; never touches a socket."""

    def __init__(self, conn_id: int, log: DeliveryLog, behaviour: Callable[[], Behaviour], *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, emit: Emit = _no_emit, peer: str = "") -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.head = b""
        self.received = 0
        self._log = log
        self._behaviour = behaviour
        self._emit = emit
        self._decoder = Decoder(max_payload)
        self._out = bytearray()
        self.session: bytes | None = None
        self.messages = 0
        self.closing: Closing | None = None
        self.error: LabError | None = None

    @property
    def wants_read(self) -> bool:
        """False once the connection is ending, or while a stop_reading behaviour holds it."""
        return self.closing is None and not self._behaviour().pauses_reading_at(self.messages)

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    def receive_data(self, data: bytes) -> None:
        """Bytes from recv; ``b""`` means the peer sent FIN."""
        # Only the first few bytes of a connection are ever copied: the cost is one length check per recv.
        if len(self.head) < HEAD_SIZE:
            self.head += bytes(data[:HEAD_SIZE - len(self.head)])
        self.received += len(data)
        self._decoder.receive_data(data)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def fail(self, error: LabError) -> None:
        """The driver's I/O failed (reset, broken pipe): record it and end the connection."""
        if self.closing is None or self.error is None:
            self.error = error
            self.closing = "error"

    def rejection(self, answer: str) -> dict[str, Any] | None:
        """What the judge is shown when this connection ended because its bytes broke the protocol,
        else None; ``answer`` says what the server did about it."""
        if not isinstance(self.error, REJECTED):
            return None
        return {"peer": self.peer, "head": self.head.hex(), "received": self.received, "error": str(self.error),
                "kind": self.error.kind, "answer": answer}

    def process(self) -> None:
        """Act on every whole frame the current behaviour lets through."""
        if self.closing is None and self._behaviour().ends_connection_at(self.messages):
            self.closing = self._behaviour().mode  # type: ignore[assignment]
        while self.closing is None and self.wants_read:
            try:
                event = self._decoder.next_event()
            except (ProtocolError, IncompleteMessage) as exc:
                self.fail(exc)
                return
            if event is NEED_DATA:
                return
            if event is CLOSED:
                self.closing = "eof"
                return
            assert isinstance(event, Frame)
            try:
                self._handle(event)
            except ProtocolError as exc:
                self.fail(exc)
                return

    def _handle(self, frame: Frame) -> None:
        if frame.type is FrameType.HELLO:
            self._hello(frame)
        elif frame.type is FrameType.DATA:
            self._data(frame)
        elif frame.type is FrameType.PING:
            self._out += encode_pong(frame.seq)
        else:
            raise BadFrame(f"a client may not send {frame.type.name} frames; it sends HELLO, DATA or PING")

    def _hello(self, frame: Frame) -> None:
        if self.session is not None or self.messages:
            raise BadFrame("HELLO must be the first frame of a connection, and only once")
        if len(frame.payload) != SESSION_ID_SIZE:
            raise BadFrame(f"HELLO from a client carries a {SESSION_ID_SIZE}-byte session id; "
                           f"got {len(frame.payload)} bytes")
        self.session = frame.payload
        last = self._log.last_seq(self.session)
        self._emit("hello", conn=self.conn_id, session=self.session.hex(), last_seq=last)
        self._out += encode_hello_reply(last)

    def _data(self, frame: Frame) -> None:
        seq, body = frame.seq, frame.body
        # Recorded (and flushed) before the ECHO is queued: an ack always means "on record".
        if self._log.deliver(self.session, seq, body):
            self._emit("delivered", conn=self.conn_id, seq=seq, len=len(body))
        else:
            self._emit("duplicate", conn=self.conn_id, seq=seq, len=len(body))
        self.messages += 1
        behaviour = self._behaviour()
        ending = behaviour.ends_connection_at(self.messages)
        if not ending or behaviour.ack_last:
            self._out += encode_echo(seq, body, max_payload=self._decoder.max_payload)
        if ending:
            self.closing = behaviour.mode  # type: ignore[assignment]


__all__ = ["ServerConnection", "Closing", "HEAD_SIZE", "REJECTED"]
