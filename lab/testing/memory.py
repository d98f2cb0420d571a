"""Two connected in-memory stream ends that behave like blocking TCP sockets, with fault hooks.

Like trio's ``memory_stream_pair`` but with the socket calls the lab's code
makes (send, sendall, recv, shutdown, close, settimeout), so code written for a
socket runs against it unchanged, without a network and deterministically::

    a, b = memory_stream_pair(capacity=64)     # at most 64 bytes in flight each way
    a.max_send = 3                              # every send accepts at most 3 bytes (partial sends)
    b.max_recv = 1                              # every recv returns at most 1 byte (fragmentation)
    a.sendall(b"hello"); b.recv(100)            # -> b"h"
    a.shutdown(socket.SHUT_WR)                  # b.recv drains what is buffered, then returns b""
    a.reset()                                   # b's next recv/send raises ConnectionResetError

A recv on an empty, open stream blocks until data, EOF, reset or its timeout
(``settimeout``; TimeoutError like ``socket.timeout``). A send into a full
stream blocks the same way: that is backpressure from a peer that stops
reading. Sending after the peer closed raises BrokenPipeError.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from typing import Any


class _Pipe:
    """One direction of the stream: bytes in flight, EOF and reset flags, one condition."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buf = bytearray()
        self.eof = False          # writer shut down: reader gets b"" after the buffer
        self.reset = False        # writer aborted: reader gets ECONNRESET, buffer discarded
        self.reader_gone = False  # reader closed: writer gets EPIPE
        self.cond = threading.Condition()


def _reset_error() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))


def _pipe_error() -> BrokenPipeError:
    return BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


class MemoryStream:
    """One end of a :func:`memory_stream_pair`; thread-safe, socket-shaped."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, name: str) -> None:
        self._in = incoming
        self._out = outgoing
        self.name = name
        self.timeout: float | None = None
        self.max_send: int | None = None
        """At most this many bytes accepted per send() call: forces partial sends."""
        self.max_recv: int | None = None
        """At most this many bytes returned per recv() call: forces fragmentation."""
        self.closed = False
        self.sent_total = 0
        self.send_calls = 0
        self.recv_calls = 0

    def __repr__(self) -> str:
        return f"<MemoryStream {self.name}>"

    # -- socket calls -----------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def gettimeout(self) -> float | None:
        return self.timeout

    def setblocking(self, flag: bool) -> None:
        self.timeout = None if flag else 0.0

    def connect(self, address: Any) -> None:
        """Already connected; accepted so that code which calls connect() runs unchanged."""

    def fileno(self) -> int:
        return -1

    def _wait(self, cond: threading.Condition, ready: Any) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not ready():
            if self.closed:
                raise OSError(errno.EBADF, "the memory stream was closed")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if self.timeout == 0:
                    raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                raise TimeoutError("timed out")
            cond.wait(remaining)

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self.send_calls += 1
        data = bytes(data)
        pipe = self._out
        with pipe.cond:
            if pipe.reset:
                raise _reset_error()
            if pipe.eof:
                raise _pipe_error()
            if not data:
                return 0

            def ready() -> bool:
                return pipe.reader_gone or pipe.reset or len(pipe.buf) < pipe.capacity

            self._wait(pipe.cond, ready)
            if pipe.reset:
                raise _reset_error()
            if pipe.reader_gone:
                raise _pipe_error()
            room = pipe.capacity - len(pipe.buf)
            n = min(len(data), room, self.max_send if self.max_send is not None else len(data))
            pipe.buf += data[:n]
            self.sent_total += n
            pipe.cond.notify_all()
            return n

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(bytes(data))
        while view:
            view = view[self.send(view):]

    def recv(self, bufsize: int) -> bytes:
        self.recv_calls += 1
        pipe = self._in
        with pipe.cond:
            self._wait(pipe.cond, lambda: bool(pipe.buf) or pipe.eof or pipe.reset)
            if pipe.reset:
                raise _reset_error()
            limit = min(bufsize, self.max_recv if self.max_recv is not None else bufsize)
            chunk = bytes(pipe.buf[:limit])
            del pipe.buf[:limit]
            pipe.cond.notify_all()
            return chunk

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            with self._out.cond:
                self._out.eof = True
                self._out.cond.notify_all()
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            with self._in.cond:
                self._in.reader_gone = True
                self._in.cond.notify_all()

    def close(self) -> None:
        if self.closed:
            return
        self.shutdown(socket.SHUT_RDWR)
        self.closed = True
        for pipe in (self._in, self._out):
            with pipe.cond:
                pipe.cond.notify_all()

    # -- faults -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Abort like SO_LINGER 0: the peer's pending and future reads and writes fail with ECONNRESET."""
        for pipe in (self._out, self._in):
            with pipe.cond:
                pipe.reset = True
                pipe.buf.clear()
                pipe.cond.notify_all()
        self.closed = True

    @property
    def unread(self) -> int:
        """Bytes this end sent that the peer has not read yet."""
        with self._out.cond:
            return len(self._out.buf)

    def __enter__(self) -> "MemoryStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def memory_stream_pair(capacity: int = 1 << 20) -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends; ``capacity`` bounds the bytes in flight in each direction."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 byte; got {capacity}")
    a_to_b, b_to_a = _Pipe(capacity), _Pipe(capacity)
    return MemoryStream(b_to_a, a_to_b, "a"), MemoryStream(a_to_b, b_to_a, "b")


__all__ = ["MemoryStream", "memory_stream_pair"]
