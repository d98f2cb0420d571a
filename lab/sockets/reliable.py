"""Reliable delivery across reconnects: a stream of messages that survives a server restart, each delivered once.

:class:`ReliableSender` puts a session, sequence numbers and reconnection with
backoff (:mod:`lab.sockets.backoff`) on top of
:class:`~lab.sockets.robust.RobustConnection`. The server de-duplicates by
sequence number and says, in its HELLO reply, what it already delivered, so a
message whose ECHO was lost is resent and still delivered exactly once.

Not thread-safe: one thread owns a sender.
"""

from __future__ import annotations

import collections
import random
import time
import uuid
from collections.abc import Callable

from lab.sockets import framing
from lab.sockets.backoff import Backoff
from lab.sockets.errors import ConnectError, ConnectionLost, LabError, PeerUnresponsive, ProtocolError
from lab.sockets.framing import FrameType
from lab.sockets.robust import RobustConfig, RobustConnection

Event = Callable[[str, dict[str, object]], None]
_RETRYABLE = (ConnectError, ConnectionLost, PeerUnresponsive)


class ReliableSender:
    """A stream of messages delivered exactly once, across dropped connections and server restarts.

    Each message gets the next sequence number of a session (a random
    16-byte id) and stays in memory until its ECHO comes back. On a lost
    connection (ConnectionLost, PeerUnresponsive, ConnectError) the sender
    waits per ``backoff``, reconnects, sends HELLO(session), drops every
    message the server says it already delivered, and resends the rest in
    order. The server de-duplicates by sequence number, so a message whose
    ECHO was lost is not delivered twice. Up to ``window`` messages are in
    flight at once.

    ``on_event(name, facts)`` is told ``connected``, ``reconnecting`` (with the
    delay and the error that caused it), ``resent`` and ``acked`` (once per
    message, ``via`` its ECHO or a HELLO reply that covered it); the client
    driver prints them. When the backoff budget runs out the last error is
    raised. ``clock``, ``sleep`` and ``rng`` are injectable for tests.

        with ReliableSender("127.0.0.1", port, config) as sender:
            for body in bodies:
                sender.send(body)
            sender.flush()
    """

    def __init__(self, host: str, port: int, config: RobustConfig | None = None, *,
                 backoff: Backoff | None = None, window: int = 16, session_id: bytes | None = None,
                 on_event: Event | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | Callable[[], float] | None = None,
                 connect: Callable[[str, int, RobustConfig], RobustConnection] | None = None) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"'window' must be an int >= 1 (messages in flight); got {window!r}")
        if session_id is not None and len(session_id) != framing.SESSION_ID_SIZE:
            raise ValueError(f"'session_id' must be {framing.SESSION_ID_SIZE} bytes; got {len(session_id)}")
        self.host, self.port = host, port
        self.config = config if config is not None else RobustConfig()
        self.backoff = backoff if backoff is not None else Backoff(base=0.05, cap=1.0, deadline=30.0)
        self.window = window
        self.session_id = session_id if session_id is not None else uuid.uuid4().bytes
        self._on_event = on_event
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self._connect = connect if connect is not None else RobustConnection.connect
        self._conn: RobustConnection | None = None
        self._pending: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._next_seq = 1
        self.acked = 0           # messages known delivered (ECHO seen, or covered by a HELLO reply)
        self.reconnects = 0
        self.resent = 0

    @property
    def unacked(self) -> int:
        return len(self._pending)

    def _emit(self, name: str, **facts: object) -> None:
        if self._on_event is not None:
            self._on_event(name, facts)

    def send(self, body: bytes) -> int:
        """Queue ``body`` for exactly-once delivery; returns its sequence number.

        Blocks while ``window`` messages are unacknowledged (reconnecting as
        needed). Returning does not mean delivered; :meth:`flush` does.
        """
        if len(body) + framing.SEQ.size > self.config.max_payload:
            raise ValueError(f"message of {len(body)} bytes exceeds max_payload={self.config.max_payload} "
                             f"(minus {framing.SEQ.size} for the sequence number)")
        while len(self._pending) >= self.window:
            self._run(self._read_one_ack)
        seq = self._next_seq
        self._next_seq += 1
        self._pending[seq] = body
        if self._conn is None:
            self._reconnect(None)  # sends everything pending, this message included
        else:
            self._run(lambda conn: conn.send_message(body, seq=seq))
        return seq

    def flush(self) -> None:
        """Return once every message sent so far has been acknowledged (delivered once)."""
        if self._conn is None and self._pending:
            self._reconnect(None)
        while self._pending:
            self._run(self._read_one_ack)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "ReliableSender":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, step: Callable[[RobustConnection], object]) -> None:
        """Do one step on the current connection; on a retryable failure reconnect (which resends)."""
        if self._conn is None:
            self._reconnect(None)
            return
        try:
            step(self._conn)
        except _RETRYABLE as exc:
            self._reconnect(exc)

    def _read_one_ack(self, conn: RobustConnection) -> None:
        frame = conn.recv_frame()
        if frame.type is not FrameType.ECHO:
            raise ProtocolError(f"expected ECHO, got {frame.type.name}", phase="read", peer=conn.peer)
        body = self._pending.get(frame.seq)
        if body is None:
            return  # an echo for a message already acknowledged (e.g. by a HELLO reply)
        if frame.body != body:
            raise ProtocolError(f"echo of seq {frame.seq} differs from what was sent", phase="read", peer=conn.peer)
        # ECHOs come back in order, so everything before this one is delivered too.
        while self._pending:
            seq = next(iter(self._pending))
            if seq > frame.seq:
                break
            del self._pending[seq]
            self.acked += 1
            self._emit("acked", seq=seq, via="echo")

    def _reconnect(self, cause: LabError | None) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        run = self.backoff.start(clock=self._clock, rng=self._rng)
        attempt = 0
        while True:
            if cause is not None:
                delay = run.next_delay()
                if delay is None:
                    raise cause
                self.reconnects += 1
                self._emit("reconnecting", attempt=attempt + 1, delay=round(delay, 4), **cause.as_dict())
                self._sleep(delay)
            attempt += 1
            conn: RobustConnection | None = None
            try:
                conn = self._connect(self.host, self.port, self.config)
                last = conn.hello(self.session_id)
                delivered = [s for s in self._pending if s <= last]
                for seq in delivered:
                    del self._pending[seq]
                    self.acked += 1
                    self._emit("acked", seq=seq, via="hello")
                self._emit("connected", attempt=attempt, last_delivered=last, session=self.session_id.hex(),
                           already_delivered=len(delivered), pending=len(self._pending))
                resend = list(self._pending.items())
                for seq, body in resend:
                    conn.send_message(body, seq=seq)
                if cause is not None and resend:
                    self.resent += len(resend)
                    self._emit("resent", count=len(resend), first=resend[0][0], last=resend[-1][0])
                self._conn = conn
                return
            except _RETRYABLE as exc:
                if conn is not None:
                    conn.close()
                cause = exc
            except BaseException:
                if conn is not None:
                    conn.close()
                raise


__all__ = ["ReliableSender"]
