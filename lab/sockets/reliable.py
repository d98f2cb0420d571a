"""Reliable delivery across reconnects: a stream of messages that survives a server restart, each delivered once.

:class:`ReliableSender` puts a session, sequence numbers and reconnection with
backoff (:mod:`lab.sockets.backoff`) on top of
:class:`~lab.sockets.robust.RobustConnection`. The server de-duplicates by
sequence number and says, in its HELLO reply, what it already delivered, so a
message whose ECHO was lost is resent and still delivered exactly once.

With ``fallbacks`` the sender fails over between servers that share one
delivery record: after a failure the next attempt goes to the *next* address
in the ring, not back to the one that just failed. A host that vanished does
not refuse, it stays silent, so each connect to it waits its whole connect
timeout; retrying it first would spend the reconnect budget on the dead host.

Not thread-safe: one thread owns a sender.
"""

from __future__ import annotations

import collections
import random
import time
import uuid
from collections.abc import Callable, Sequence

from lab.sockets import framing
from lab.sockets.backoff import Backoff
from lab.sockets.errors import ConnectError, ConnectionLost, LabError, PeerUnresponsive, ProtocolError
from lab.sockets.framing import FrameType
from lab.sockets.robust import RobustConfig, RobustConnection

Event = Callable[[str, dict[str, object]], None]
_RETRYABLE = (ConnectError, ConnectionLost, PeerUnresponsive)


def _address_problem(entry: object) -> str | None:
    """What is wrong with ``entry`` as a (host, port) pair, or None if nothing."""
    if not isinstance(entry, tuple) or len(entry) != 2:
        return "not a (host, port) pair"
    host, port = entry
    if not isinstance(host, str):
        return f"host is {type(host).__name__}, not str"
    if isinstance(port, bool) or not isinstance(port, int):
        return f"port is {type(port).__name__}, not int"
    if not 1 <= port <= 65535:
        return "port out of range"
    return None


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

    ``fallbacks`` are further (host, port) addresses of servers that share the
    first one's delivery record (HELLO on any of them reports the same last
    delivered seq). The first address is tried first; after a failed
    connection or attempt the next attempt goes to the next address round the
    ring (a dead host costs a whole connect timeout per try, so it is not
    retried first), and a connection that works stays the current address
    until it fails. One backoff run (its delays and deadline) bounds the whole
    reconnect, whichever addresses it visits. ``host``/``port`` stay the first
    address; :attr:`address` is the current one, ``addresses`` all of them.

    ``on_event(name, facts)`` is told ``connected`` (with the ``host`` and
    ``port`` it reached), ``reconnecting`` (with the delay, the error that
    caused it and ``to_host``/``to_port``, where the next attempt goes),
    ``resent`` and ``acked`` (once per message, ``via`` its ECHO or a HELLO
    reply that covered it); the client driver prints them. When the backoff
    budget runs out the last error is raised. ``clock``, ``sleep``, ``rng`` and
    ``connect`` are injectable for tests.

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
                 connect: Callable[[str, int, RobustConfig], RobustConnection] | None = None,
                 fallbacks: Sequence[tuple[str, int]] = ()) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"'window' must be an int >= 1 (messages in flight); got {window!r}")
        if session_id is not None and len(session_id) != framing.SESSION_ID_SIZE:
            raise ValueError(f"'session_id' must be {framing.SESSION_ID_SIZE} bytes; got {len(session_id)}")
        fallbacks = tuple(fallbacks)
        for i, entry in enumerate(fallbacks):
            problem = _address_problem(entry)
            if problem is not None:
                raise ValueError(f"'fallbacks' must be a sequence of (host, port) pairs, host a str and port an int "
                                 f"1..65535; fallbacks[{i}] is {entry!r}: {problem}")
        self.host, self.port = host, port
        self.addresses: tuple[tuple[str, int], ...] = ((host, port), *fallbacks)
        self._current = 0        # index into addresses: connected to now, or tried next
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
    def address(self) -> tuple[str, int]:
        """The (host, port) connected to now, or the one the next attempt goes to."""
        return self.addresses[self._current]

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
                # The current address just failed: move on before giving up too, so a later
                # send does not start with the address that failed last.
                self._current = (self._current + 1) % len(self.addresses)
                delay = run.next_delay()
                if delay is None:
                    raise cause
                self.reconnects += 1
                self._emit("reconnecting", attempt=attempt + 1, delay=round(delay, 4), **cause.as_dict(),
                           to_host=self.address[0], to_port=self.address[1])
                self._sleep(delay)
            attempt += 1
            host, port = self.address
            conn: RobustConnection | None = None
            try:
                conn = self._connect(host, port, self.config)
                last = conn.hello(self.session_id)
                delivered = [s for s in self._pending if s <= last]
                for seq in delivered:
                    del self._pending[seq]
                    self.acked += 1
                    self._emit("acked", seq=seq, via="hello")
                self._emit("connected", attempt=attempt, last_delivered=last, session=self.session_id.hex(),
                           already_delivered=len(delivered), pending=len(self._pending), host=host, port=port)
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
