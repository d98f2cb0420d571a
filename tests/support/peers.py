"""Small misbehaving peers for the robust-connection tests: real sockets on 127.0.0.1 only.

Each helper has a deadline; threads are daemons and are joined with a timeout
by :func:`background`, so a broken test fails instead of hanging.

    with listening() as lst:
        conn = RobustConnection.connect(*lst.getsockname(), config)
        peer = accept(lst)
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

from lab.sockets import framing
from lab.sockets.framing import Decoder, Frame, FrameType

HOST = "127.0.0.1"
LINGER_RST = struct.pack("ii", 1, 0)


@contextlib.contextmanager
def listening(*, rcvbuf: int | None = None, backlog: int = 8) -> Iterator[socket.socket]:
    """A listener on 127.0.0.1, port 0. ``rcvbuf`` (set before listen) is inherited by accepted sockets."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        lst.bind((HOST, 0))
        lst.listen(backlog)
        yield lst
    finally:
        lst.close()


def accept(lst: socket.socket, timeout: float = 2.0) -> socket.socket:
    lst.settimeout(timeout)
    sock, _ = lst.accept()
    sock.settimeout(timeout)
    return sock


def abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER {1, 0})."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    sock.close()


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read_frames(sock: socket.socket, count: int, timeout: float = 2.0) -> list[Frame]:
    """Read exactly ``count`` frames (or fail on EOF/timeout)."""
    dec = Decoder()
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        dec.receive_data(chunk)
        frames.extend(dec)
        if not chunk:
            break
    return frames


def drain(sock: socket.socket, quiet: float = 0.2) -> list[Frame]:
    """Every whole frame readable now (stops after ``quiet`` seconds of silence or EOF)."""
    dec = Decoder()
    sock.settimeout(quiet)
    with contextlib.suppress(TimeoutError, ConnectionError):
        while chunk := sock.recv(65536):
            dec.receive_data(chunk)
    return list(dec)


def reply_for(frame: Frame) -> bytes | None:
    """What a well-behaved lab server answers to ``frame`` (no HELLO bookkeeping)."""
    if frame.type is FrameType.DATA:
        return framing.encode_echo(frame.seq, frame.body)
    if frame.type is FrameType.PING:
        return framing.encode_pong(frame.seq)
    if frame.type is FrameType.HELLO:
        return framing.encode_hello_reply(0)
    return None


def serve_echo(sock: socket.socket, *, stop: threading.Event, echo_delay: float = 0.0,
               answer_pings: bool = True, dribble: float | None = None) -> None:
    """Echo frames until EOF or ``stop``; PINGs are answered at once (if asked), ECHOs after ``echo_delay``.

    ``dribble`` sends every reply one byte at a time, that many seconds apart.
    """
    dec = Decoder()
    sock.settimeout(0.05)
    due: list[tuple[float, bytes]] = []
    while not stop.is_set():
        now = time.monotonic()
        for when, data in [d for d in due if d[0] <= now]:
            due.remove((when, data))
            if dribble is None:
                sock.sendall(data)
            else:
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
                    time.sleep(dribble)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return
        dec.receive_data(chunk)
        for frame in dec:
            reply = reply_for(frame)
            if reply is None:
                continue
            if frame.type is FrameType.PING:
                if answer_pings:
                    sock.sendall(reply)
            else:
                due.append((time.monotonic() + echo_delay, reply))


@contextlib.contextmanager
def background(target: Callable[[], object], *, join_timeout: float = 5.0) -> Iterator[dict[str, object]]:
    """Run ``target`` in a daemon thread; on exit join it (bounded). Its exception, if any, is in result["error"]."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = target()
        except BaseException as exc:  # reported to the test, not lost in the thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        thread.join(join_timeout)
        assert not thread.is_alive(), "a test peer thread did not finish in time"
