"""Socket code written the way the Socket Programming HOWTO sketches it, and the classic mistakes.

These are the *subjects* of the lab's experiments, not tools: they block
without any deadline, report a dead peer as a bare RuntimeError, and some are
deliberately wrong. Tests run them against misbehaving peers to show what
happens. Do not add timeouts to them: hanging forever is their documented
behaviour, and the tests assert it.

Every class speaks the lab framing (a DATA frame out, its ECHO back) through the
same four calls::

    s = REGISTRY["naive"]()            # or MySocket(msglen) for the fixed-length variant
    s.connect("127.0.0.1", port)
    s.mysend(make_message(1, b"hello"))
    reply = s.myreceive()              # the whole ECHO frame, as bytes
    s.close()

    "naive-fixed"        MySocket                every message is exactly msglen bytes
    "naive"              LengthPrefixedSocket    header loop, then payload loop (the sound one)
    "naive-single-recv"  SingleRecvSocket        assumes one recv holds a whole message
    "naive-ignore-send"  IgnoreSendReturnSocket  assumes one send takes a whole message
    "naive-two-writes"   TwoWritesSocket         header and payload in two send() calls, Nagle left on
    "naive-walltime"     WallClockDeadlineSocket a read deadline computed from time.time()

Each accepts an existing socket-like object (``sock=``), so the fakes in
:mod:`lab.testing` can drive them without a network.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any, Protocol

from lab.sockets.framing import HEADER, HEADER_SIZE, encode_data

BROKEN = "socket connection broken"
RECV_CHUNK = 2048
"""The most any one recv asks for: a bound on the buffer each call needs."""


class SocketLike(Protocol):
    def connect(self, address: Any) -> None: ...
    def send(self, data: bytes, /) -> int: ...
    def recv(self, bufsize: int, /) -> bytes: ...
    def close(self) -> None: ...


def make_message(seq: int, body: bytes) -> bytes:
    """The bytes of one message: a DATA frame carrying ``seq`` and ``body``."""
    return encode_data(seq, body)


def fixed_message(seq: int, msglen: int, fill: bytes = b".") -> bytes:
    """A DATA frame of exactly ``msglen`` bytes on the wire, for :class:`MySocket`."""
    body_len = msglen - HEADER_SIZE - 8
    if body_len < 0:
        raise ValueError(f"msglen must be at least {HEADER_SIZE + 8} (header + seq); got {msglen}")
    return make_message(seq, (fill * (body_len // max(len(fill), 1) + 1))[:body_len])


def _tcp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


class _NaiveBase:
    def __init__(self, sock: SocketLike | None = None) -> None:
        self.sock: SocketLike = sock if sock is not None else _tcp_socket()

    def connect(self, host: str, port: int) -> None:
        self.sock.connect((host, port))

    def close(self) -> None:
        self.sock.close()

    def _send_all(self, msg: bytes, total: int) -> None:
        # The loop the HOWTO insists on: send may take only part of what it is given.
        view = memoryview(msg)
        sent = 0
        while sent < total:
            n = self.sock.send(view[sent:total])
            if n == 0:
                raise RuntimeError(BROKEN)
            sent += n

    def _recv_exactly(self, count: int) -> bytes:
        # recv returns what the buffers hold, never "a message": loop until there is enough.
        chunks: list[bytes] = []
        got = 0
        while got < count:
            chunk = self.sock.recv(min(count - got, RECV_CHUNK))
            if chunk == b"":
                raise RuntimeError(BROKEN)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


class MySocket(_NaiveBase):
    """Fixed-length messages: both sides agree that every message is ``msglen`` bytes.

    Mistake: none in the loops, but the design is brittle. A message of any other
    length cannot be sent (ValueError), and a peer that stops sending, or sends
    fewer than ``msglen`` bytes and then waits, leaves ``myreceive`` blocked in
    recv forever: there is no deadline anywhere. A peer that closes mid-message,
    or resets, surfaces as RuntimeError("socket connection broken") or a raw
    ConnectionResetError, never as anything that says how much arrived.
    """

    def __init__(self, msglen: int, sock: SocketLike | None = None) -> None:
        if msglen < HEADER_SIZE + 8:
            raise ValueError(f"msglen must be at least {HEADER_SIZE + 8} (a DATA frame's header and seq); "
                             f"got {msglen}")
        super().__init__(sock)
        self.msglen = msglen

    def mysend(self, msg: bytes) -> None:
        if len(msg) != self.msglen:
            raise ValueError(f"this socket sends messages of exactly {self.msglen} bytes; got {len(msg)}")
        self._send_all(msg, self.msglen)

    def myreceive(self) -> bytes:
        return self._recv_exactly(self.msglen)


class LengthPrefixedSocket(_NaiveBase):
    """Each message says how long it is: one loop for the header, one for the payload.

    This is the approach the HOWTO calls much better, done right: it survives
    fragmentation, partial sends and back-to-back messages. What it still lacks
    is any deadline: a peer that stops sending (or stops reading, so our send
    fills the buffers) blocks it forever, and a peer that dies is only noticed
    if its kernel says so (FIN → RuntimeError, RST → ConnectionResetError).
    """

    def mysend(self, msg: bytes) -> None:
        self._send_all(msg, len(msg))

    def myreceive(self) -> bytes:
        header = self._recv_exactly(HEADER_SIZE)
        length, _ = HEADER.unpack(header)
        # No size check: a hostile header makes this wait for up to 4 GiB.
        return header + self._recv_exactly(length)


class SingleRecvSocket(LengthPrefixedSocket):
    """Mistake: one recv is assumed to return exactly one whole message.

    Failure: when the stream is fragmented (a large message, a slow link, a
    dribbling peer) ``myreceive`` returns only the first piece, a truncated
    message; the rest is read later as if it were the next message, so every
    reply after that is garbage. When two replies arrive together it returns
    both glued into one.
    """

    def myreceive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if chunk == b"":
            raise RuntimeError(BROKEN)
        return chunk


class IgnoreSendReturnSocket(LengthPrefixedSocket):
    """Mistake: calls send once and ignores the count it returns.

    Failure: when the kernel's send buffer has less room than the message (a
    big message, a small SO_SNDBUF, a peer reading slowly) send accepts only a
    prefix; the rest is silently dropped. The peer then waits forever for the
    missing bytes, or reads the next message's bytes as this one's tail.
    """

    def mysend(self, msg: bytes) -> None:
        self.sock.send(msg)


class TwoWritesSocket(LengthPrefixedSocket):
    """Mistake: writes the header, then the payload, as two small sends, with Nagle's algorithm on.

    Failure: nothing is lost, but every exchange stalls. The header leaves at once; the
    payload is small and the header is not yet acknowledged, so Nagle's algorithm holds it
    back until an ACK comes. The server has nothing to say before the whole request is in, so
    its kernel delays that ACK (Linux: about 40 ms). Write-write-read costs some 40 ms per
    exchange where one write (or TCP_NODELAY) costs a round trip.
    """

    def mysend(self, msg: bytes) -> None:
        self._send_all(msg[:HEADER_SIZE], HEADER_SIZE)
        self._send_all(msg[HEADER_SIZE:], len(msg) - HEADER_SIZE)


class WallClockDeadlineSocket(LengthPrefixedSocket):
    """Mistake: its read deadline is computed from the wall clock, ``time.time()``.

    It waits for a reply at most ``deadline_s`` (2 s), in short slices, asking the wall clock
    after each how much time is left. Failure: the wall clock is not a stopwatch. NTP steps
    it, an administrator sets it, a VM resumes: when it jumps forward the deadline fires at
    once (TimeoutError, though the peer may be fine); when it jumps back the deadline moves
    away by the size of the jump and the wait goes on, for practical purposes forever.
    ``time.monotonic()`` never jumps. Needs a real socket (it selects on it).
    """

    deadline_s = 2.0
    SLICE_S = 0.1
    on_deadline: Any = None     # called with the deadline once it is set (the lab's clock-jump child uses it)

    def myreceive(self) -> bytes:
        # One deadline for the whole reply, header and payload, set once (and reported once).
        deadline = time.time() + self.deadline_s
        if self.on_deadline is not None:
            self.on_deadline(deadline)
        header = self._recv_before(HEADER_SIZE, deadline)
        length, _ = HEADER.unpack(header)
        return header + self._recv_before(length, deadline)

    def _recv_exactly(self, count: int) -> bytes:
        return self._recv_before(count, time.time() + self.deadline_s)

    def _recv_before(self, count: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        got = 0
        while got < count:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"no reply within {self.deadline_s:g} s (by the wall clock)")
            readable, _, _ = select.select([self.sock], [], [], min(left, self.SLICE_S))
            if not readable:
                continue
            chunk = self.sock.recv(min(count - got, RECV_CHUNK))
            if chunk == b"":
                raise RuntimeError(BROKEN)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


REGISTRY: dict[str, type[_NaiveBase]] = {
    "naive-fixed": MySocket,
    "naive": LengthPrefixedSocket,
    "naive-single-recv": SingleRecvSocket,
    "naive-ignore-send": IgnoreSendReturnSocket,
    "naive-two-writes": TwoWritesSocket,
    "naive-walltime": WallClockDeadlineSocket,
}

__all__ = ["MySocket", "LengthPrefixedSocket", "SingleRecvSocket", "IgnoreSendReturnSocket", "TwoWritesSocket",
           "WallClockDeadlineSocket", "REGISTRY",
           "make_message", "fixed_message", "BROKEN", "SocketLike"]
