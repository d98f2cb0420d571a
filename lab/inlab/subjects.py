"""The implementations under test, behind one small interface so a scenario can drive any of them.

A scenario says "connect, exchange two messages, then try a third"; a
:class:`Subject` turns that into the calls each implementation really makes:
:class:`~lab.sockets.robust.RobustConnection` for "robust", the HOWTO-style classes of
:mod:`lab.sockets.naive` for the naive ones, and for graded code (``sandbox:NAME``) a
:class:`~lab.inlab.remote.RemoteSubject`, which drives a program in the sandbox container
through the driver protocol: submitted code never runs in this process. Nothing here catches
an error: whatever the implementation raises is what the scenario's oracle judges.

Every subject remembers its socket, so the runner's watchdog can unblock a
naive call that is (by design) blocked forever, by shutting the socket down
from another thread once the watchdog has seen it blocked::

    subject = make_subject("naive", "server", 7000)
    subject.connect()
    reply = subject.exchange(b"hello")   # DATA out, ECHO body back
    subject.force_unblock()              # from the watchdog thread
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from lab.inlab import submission
from lab.sockets import framing, naive
from lab.sockets.robust import RobustConfig, RobustConnection

IMPLS = ("robust", *naive.REGISTRY)
FIXED_MSGLEN = 1024


def _body_of(frame_bytes: bytes) -> bytes:
    """The message body inside a whole DATA/ECHO frame (header and sequence number stripped)."""
    return frame_bytes[framing.HEADER_SIZE + framing.SEQ.size:]


class Subject:
    impl: str

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.seq = 0
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        raise NotImplementedError

    def send(self, body: bytes) -> int:
        raise NotImplementedError

    def receive(self) -> bytes:
        raise NotImplementedError

    def exchange(self, body: bytes) -> bytes:
        self.send(body)
        return self.receive()

    def close(self) -> None:
        raise NotImplementedError

    def force_unblock(self) -> None:
        """Shut the socket down from outside: a call blocked in it returns (b'' or an error).

        Its close then aborts (RST, SO_LINGER 0): a FIN queued behind data the peer never
        acknowledged would be retransmitted by the kernel for minutes after the scenario, and
        reach the server, through a path healed by then, in the middle of a later scenario.
        """
        sock = self._sock
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def socket_stats(self) -> dict[str, Any]:
        return {}


class RobustSubject(Subject):
    impl = "robust"

    def __init__(self, host: str, port: int, config: RobustConfig | None = None) -> None:
        super().__init__(host, port)
        self.config = config or RobustConfig()
        self.conn: RobustConnection | None = None
        self.on_heartbeat: Callable[[str, int], None] | None = None   # the runner's: marks each PING and PONG

    def connect(self) -> None:
        self.conn = RobustConnection.connect(self.host, self.port, self.config)
        self.conn.heartbeat_observer = self.on_heartbeat
        self._sock = self.conn.socket

    def send(self, body: bytes) -> int:
        assert self.conn is not None, "connect() first"
        self.seq = self.conn.send_message(body)
        return self.seq

    def receive(self) -> bytes:
        assert self.conn is not None, "connect() first"
        return self.conn.recv_frame().body

    def exchange(self, body: bytes) -> bytes:
        assert self.conn is not None, "connect() first"
        self.seq = self.conn.send_message(body)
        return self.conn.await_echo(self.seq, body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def socket_stats(self) -> dict[str, Any]:
        if self.conn is None:
            return {}
        s = self.conn.stats
        return {"bytes_sent": s.bytes_sent, "bytes_received": s.bytes_received, "send_calls": s.send_calls,
                "partial_sends": s.partial_sends, "recv_calls": s.recv_calls, "pings_sent": s.pings_sent,
                "last_send_progress": s.last_send_progress}


class NaiveSubject(Subject):
    def __init__(self, impl: str, host: str, port: int) -> None:
        super().__init__(host, port)
        self.impl = impl
        cls = naive.REGISTRY[impl]
        self.sock_obj = cls(FIXED_MSGLEN) if cls is naive.MySocket else cls()
        self._sock = self.sock_obj.sock

    def connect(self) -> None:
        self.sock_obj.connect(self.host, self.port)

    def _message(self, body: bytes) -> bytes:
        self.seq += 1
        if isinstance(self.sock_obj, naive.MySocket):
            # Fixed-length messages: the body is padded or cut to fill exactly msglen bytes.
            room = FIXED_MSGLEN - framing.HEADER_SIZE - framing.SEQ.size
            body = body[:room].ljust(room, b".")
        return naive.make_message(self.seq, body)

    def send(self, body: bytes) -> int:
        self.sock_obj.mysend(self._message(body))
        return self.seq

    def receive(self) -> bytes:
        return _body_of(self.sock_obj.myreceive())

    def exchange(self, body: bytes) -> bytes:
        message = self._message(body)
        self.sock_obj.mysend(message)
        reply = self.sock_obj.myreceive()
        return _body_of(reply)

    def expected_echo(self, body: bytes) -> bytes:
        """What an intact echo of ``body`` looks like for this implementation (fixed length pads)."""
        if isinstance(self.sock_obj, naive.MySocket):
            room = FIXED_MSGLEN - framing.HEADER_SIZE - framing.SEQ.size
            return body[:room].ljust(room, b".")
        return body

    def close(self) -> None:
        self.sock_obj.close()


def make_subject(impl: str, host: str, port: int, *, config: RobustConfig | None = None,
                 **remote: Any) -> Subject:
    """The subject for ``impl``; ``remote`` goes to RemoteSubject for ``sandbox:NAME`` (dial=, hard_timeout=, ...)."""
    if impl == "robust":
        return RobustSubject(host, port, config)
    if impl in naive.REGISTRY:
        return NaiveSubject(impl, host, port)
    if submission.is_submission(impl):
        # Imported here: lab.inlab.remote builds on Subject, defined above.
        from lab.inlab.remote import RemoteSubject

        return RemoteSubject(impl, host, port, **remote)
    raise ValueError(f"unknown implementation {impl!r}; accepted: {', '.join(IMPLS)}, or a submission "
                     f"{submission.SANDBOX_PREFIX}NAME")


def expected_echo(subject: Subject, body: bytes) -> bytes:
    """What an intact reply's body looks like: naive fixed-length pads; a RemoteSubject returns the body itself."""
    return subject.expected_echo(body) if isinstance(subject, NaiveSubject) else body
