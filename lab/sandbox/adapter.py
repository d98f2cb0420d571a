"""The driver protocol served for a submitted Python file: the judge's requests become MySocket calls.

The sandbox's launcher starts it once per judge connection, with stdin and stdout being that
connection::

    python3 -m lab.sandbox.adapter /submission/mine.py [--import-timeout 5]

Before anything of the submission runs, the protocol's stdin and stdout are moved to private
file descriptors, fd 1 (and ``sys.stdout``) is pointed at stderr and fd 0 at /dev/null: a
``print()`` or a read of stdin in the submission can never corrupt or steal protocol bytes.

``hello`` imports the file (bounded, :mod:`lab.sandbox.pyloader`); a file that cannot be
loaded gets a failure with ``"phase": "import"`` and the adapter exits. Then every request
is one call, made as the lab always made them: ``MySocket()`` and ``connect(host, port)`` on
``connect``, ``mysend(msg)`` on ``send``, ``myreceive()`` on ``recv`` (it must return bytes),
a bounded ``close()`` on ``close``. Anything a call raises, ``SystemExit`` included, is
answered as a failure (its class name, the errno's name, its text) and the adapter goes on.
EOF from the judge ends it (exit 0), also in the middle of a call.

Runs inside the sandbox: standard library (and the lab's sandbox modules) only.
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.inlab.submission import IMPORT_TIMEOUT_S, SubmissionLoadFailed
from lab.sandbox import protocol as proto
from lab.sandbox.pyloader import Loaded, close_bounded, find_socket, load_file
from lab.sockets.errors import PeerClosed

EXIT_OK = 0              # the judge closed the channel
EXIT_NOT_READY = 1       # hello answered with an import failure
EXIT_PROTOCOL = 2        # the judge broke the protocol (a bug in the lab)
EXIT_IDLE = 3            # the judge said nothing for IDLE_TIMEOUT_S
IDLE_TIMEOUT_S = 1800.0  # longer than any scenario; the launcher kills us sooner when the judge goes away
WRITE_TIMEOUT_S = 30.0   # a judge that stops reading our responses is gone for all practical purposes
POLL_S = 1.0             # how often a long call's wait looks at its deadline
READ_CHUNK = 65536
PROTOCOL_ERROR = "DriverProtocolError"


class JudgeGone(PeerClosed):
    """The judge closed the channel (EOF, or a write that cannot reach it): nothing is left to serve."""


class Channel:
    """The protocol's private file descriptors: whole lines in, lines out, every wait bounded."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        for fd in {rfd, wfd}:
            os.set_blocking(fd, False)   # every wait goes through select() with a deadline
        self.reader = proto.LineReader()
        self.eof = False

    def _read_some(self) -> None:
        try:
            chunk = os.read(self.rfd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ECONNRESET on a socket: the judge is gone as surely as with EOF
            raise JudgeGone(f"reading the channel failed: {exc}") from None
        if not chunk:
            self.eof = True
            raise JudgeGone("EOF from the judge")
        self.reader.receive_data(chunk)

    def read_line(self, timeout: float) -> bytes:
        """The next request line; raises JudgeGone at EOF, TimeoutError, or ProtocolViolation."""
        deadline = time.monotonic() + timeout
        while (line := self.reader.next_line()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no request from the judge in {timeout:g} s")
            readable, _, _ = select.select([self.rfd], [], [], left)
            if readable:
                self._read_some()
        return line

    def wait_for(self, wake_fd: int, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``wake_fd`` (a call finished) while watching the judge.

        True when ``wake_fd`` became readable; raises JudgeGone at EOF; other input is kept for later.
        """
        readable, _, _ = select.select([self.rfd, wake_fd], [], [], timeout)
        if self.rfd in readable:
            self._read_some()
        return wake_fd in readable

    def write(self, data: bytes, timeout: float = WRITE_TIMEOUT_S) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JudgeGone(f"the judge did not take a response in {timeout:g} s")
            _, writable, _ = select.select([], [self.wfd], [], left)
            if not writable:
                continue
            try:
                view = view[os.write(self.wfd, view):]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:  # EPIPE, ECONNRESET: the judge went away
                raise JudgeGone(f"writing a response failed: {exc}") from None


def take_protocol_fds() -> Channel:
    """Move the protocol off fds 0 and 1 before any submitted code runs (see the module's docstring)."""
    rfd, wfd = os.dup(0), os.dup(1)   # os.dup makes them non-inheritable: children of the submission never see them
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return Channel(rfd, wfd)


_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_.]")


def _error_name(name: str) -> str:
    # A class may be named with any identifier (non-ASCII letters too); the protocol takes ASCII names.
    safe = _NOT_A_NAME.sub("_", name)[:64] or "Exception"
    return safe if proto.is_error_name(safe) else ("_" + safe)[:64]


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:proto.MAX_MESSAGE_CHARS]
    except BaseException as inner:  # noqa: BLE001 - a __str__ of the submission's may raise anything
        return f"<str() of the {type(exc).__name__} raised {type(inner).__name__}>"


def failure_of(exc: BaseException) -> proto.Failure:
    """A failure response for whatever a call raised: its class name, its errno's name, its text."""
    try:
        code = getattr(exc, "errno", None)
    except BaseException:  # noqa: BLE001 - a property of the submission's may raise
        code = None
    errno_name = errno_mod.errorcode.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    return proto.Failure(_error_name(type(exc).__name__), errno_name, _text(exc))


class Adapter:
    """One submitted file served over one channel: the state between requests, and the calls."""

    def __init__(self, path: Path, channel: Channel, *, import_timeout: float = IMPORT_TIMEOUT_S,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.path, self.channel = path, channel
        self.import_timeout, self.idle_timeout = import_timeout, idle_timeout
        self.loaded: Loaded | None = None
        self.obj: Any = None
        self.state = "new"   # new -> ready (hello) -> connected (connect) -> closed (close)

    def serve(self) -> int:
        try:
            while True:
                try:
                    request = proto.decode_request(self.channel.read_line(self.idle_timeout))
                    response, code = self.handle(request)
                except proto.ProtocolViolation as exc:
                    response, code = proto.Failure(PROTOCOL_ERROR, None, str(exc)), EXIT_PROTOCOL
                except TimeoutError as exc:
                    log(str(exc))
                    return EXIT_IDLE
                self.channel.write(proto.encode_response(response))
                if code is not None:
                    return code
        except JudgeGone:
            return EXIT_OK

    def handle(self, request: proto.Request) -> tuple[proto.Response, int | None]:
        """The response to one request, and the exit status when the adapter must stop after it."""
        if isinstance(request, proto.Hello):
            if self.state != "new":
                raise proto.ProtocolViolation("hello: sent twice; it is the first request only")
            return self._hello()
        if self.state == "new":
            raise proto.ProtocolViolation(f"{request.op}: the first request must be hello")
        if isinstance(request, proto.Connect):
            if self.state != "ready":
                raise proto.ProtocolViolation(f"connect: only once, before send and recv (state {self.state})")
            self.state = "connected"
            host, port = request.host, request.port
            return self._call("connect", lambda: self._connect(host, port)), None
        if isinstance(request, proto.Close):
            self.state = "closed"
            return self._call("close", self._close), None
        if self.state != "connected":
            raise proto.ProtocolViolation(f"{request.op}: only after connect and before close (state {self.state})")
        if isinstance(request, proto.Send):
            data = request.data
            return self._call("mysend", lambda: self._send(data)), None
        return self._call("myreceive", self._receive), None

    def _hello(self) -> tuple[proto.Response, int | None]:
        try:
            self.loaded = load_file(self.path, timeout=self.import_timeout)
        except SubmissionLoadFailed as exc:
            return proto.Failure(_error_name(exc.error), None, exc.message[:proto.MAX_MESSAGE_CHARS],
                                 "import"), EXIT_NOT_READY
        self.state = "ready"
        return proto.HelloReply(self.loaded.framing, self.loaded.msglen), None

    # The calls, each in a worker thread (as the in-lab runner always made them) ------------------------
    def _connect(self, host: str, port: int) -> proto.Response:
        assert self.loaded is not None
        self.obj = self.loaded.cls()
        self.obj.connect(host, port)
        return proto.Ack()

    def _send(self, data: bytes) -> proto.Response:
        self.obj.mysend(data)
        return proto.Ack()

    def _receive(self) -> proto.Response:
        reply = self.obj.myreceive()
        if not isinstance(reply, (bytes, bytearray)):
            raise TypeError(f"myreceive() must return bytes (one whole frame); it returned {type(reply).__name__}")
        reply = bytes(reply)
        if len(reply) > proto.MAX_DATA:
            # No message the judge sends is this long, so the reply is wrong either way; cut, it stays wrong.
            log(f"myreceive() returned {len(reply)} bytes; passing on the first {proto.MAX_DATA}")
            reply = reply[:proto.MAX_DATA]
        return proto.Received(reply)

    def _close(self) -> proto.Response:
        if self.obj is not None:
            close_bounded(self.obj)
            sock = find_socket(self.obj)
            if sock is not None:
                sock.close()
        return proto.Ack()

    def _call(self, name: str, call: Callable[[], proto.Response]) -> proto.Response:
        """Run one call in a thread; while it runs, EOF from the judge ends the adapter at once (JudgeGone)."""
        result: list[proto.Response] = []
        # The thread says it is done through a pipe, so one select() waits for it and for the judge alike.
        wake_r, wake_w = os.pipe()

        def run() -> None:
            try:
                result.append(call())
            except BaseException as exc:  # noqa: BLE001 - SystemExit and the rest are the submission's report
                result.append(failure_of(exc))
            finally:
                try:
                    os.write(wake_w, b"x")
                except OSError:
                    pass  # EPIPE: the wait was given up; nobody listens any more
                os.close(wake_w)   # the thread's own end: closed by the one that writes it, never reused under it

        try:
            threading.Thread(target=run, name=f"call {name}", daemon=True).start()
            deadline = time.monotonic() + self.idle_timeout
            while not self.channel.wait_for(wake_r, max(min(deadline - time.monotonic(), POLL_S), 0.0)):
                if time.monotonic() > deadline:
                    # The judge stopped waiting long ago; report it rather than wait for ever.
                    return proto.Failure("TimeoutError", None, f"{name} did not return in {self.idle_timeout:g} s")
            return result[0]
        finally:
            os.close(wake_r)


def log(message: str) -> None:
    try:
        os.write(2, f"adapter: {message}\n".encode(errors="replace"))
    except OSError:
        pass  # no stderr: nothing to tell


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.sandbox.adapter",
                                     description="Serve the driver protocol on stdin/stdout for a submitted file.")
    parser.add_argument("file", type=Path, help="the submission, a .py file defining MySocket")
    parser.add_argument("--import-timeout", type=float, default=IMPORT_TIMEOUT_S,
                        help=f"seconds the file's import may take (default {IMPORT_TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    channel = take_protocol_fds()
    return Adapter(args.file, channel, import_timeout=args.import_timeout).serve()


def _exit(code: int) -> None:
    # os._exit, not sys.exit: a non-daemon thread the submission started (or an import still
    # spinning in its thread) must not keep the process alive after the judge is done with it.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
