"""Newline-delimited JSON over TCP: a small threaded server and its one-shot client; standard library only.

One JSON object per line in, one JSON reply per line out, any number of
requests on a connection. The lab servers' control port
(:mod:`lab.server.control`) and the fault agent's API (:mod:`lab.inlab.agent.api`,
:mod:`lab.inlab.agent.client`) are both this, with their own commands on top.

Server: subclass :class:`JsonLinesServer`, implement :meth:`~JsonLinesServer.handle`
(a decoded request in, a reply dict out; it must not raise), and override the
reply texts you want in your own words::

    class Echo(JsonLinesServer):
        def handle(self, request: Any) -> dict[str, Any]:
            return {"ok": True, "echo": request}

    with Echo("127.0.0.1", 0) as srv:                   # port 0: pick a free one
        request("127.0.0.1", srv.port, {"hi": 1}, timeout=2.0)   # -> {"ok": True, "echo": {"hi": 1}}

What it bounds, so that no client can wedge the process that serves it:

- one daemon thread per connection, at most ``max_connections`` (None: no
  limit); a connection beyond that gets :meth:`~JsonLinesServer.busy` and is closed;
- a request line is at most ``max_line`` bytes; a longer one gets
  :meth:`~JsonLinesServer.too_long` (None: no reply) and the connection is closed;
- a connection that sends nothing for ``idle_timeout`` seconds is closed (None: never);
- each reply must be taken within ``reply_timeout`` seconds, so a client that
  never reads cannot pin a thread;
- :meth:`~JsonLinesServer.stop` shuts every connection down and joins the
  threads within its deadline.

Client: :func:`request` sends one object and returns the decoded reply;
:func:`request_line` returns the raw reply line for callers that decode it
themselves; both read at most ``max_reply`` bytes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

MAX_LINE = 64 * 1024       # bytes in one request line
REPLY_TIMEOUT = 5.0        # seconds a client has to take one reply
MAX_REPLY = 1024 * 1024    # bytes the client reads for one reply line
RECV_SIZE = 65536


class JsonLinesServer:
    """A threaded JSON-lines server; subclasses say what a request does (:meth:`handle`)."""

    name = "jsonlines"           # thread names: NAME-PORT accepts, NAME-conn-PORT serves a connection
    skip_blank_lines = True      # False: an empty line is answered like any other non-JSON line
    stop_timeout = 2.0           # stop()'s deadline when none is given

    def __init__(self, host: str, port: int, *, poll: float = 0.1, idle_timeout: float | None = None,
                 max_line: int = MAX_LINE, reply_timeout: float = REPLY_TIMEOUT,
                 max_connections: int | None = None, backlog: int = 16) -> None:
        self.idle_timeout = idle_timeout
        self.max_line = max_line
        self.reply_timeout = reply_timeout
        self.max_connections = max_connections
        self._poll = poll
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, socket.socket] = {}
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(backlog)
        except BaseException:
            self._listener.close()
            raise
        self._listener.settimeout(poll)  # so the accept loop notices stop()
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True, name=f"{self.name}-{self.port}")

    # What a subclass says ---------------------------------------------------------------------------
    def handle(self, request: Any) -> dict[str, Any]:
        """The reply to one decoded request (any JSON value); must not raise."""
        raise NotImplementedError

    def not_json(self, exc: ValueError) -> dict[str, Any]:
        return {"ok": False, "error": f"request is not valid JSON ({exc}); send one JSON object per line"}

    def too_long(self) -> dict[str, Any] | None:
        """The last word to a request line longer than ``max_line``; None closes without one."""
        return {"ok": False, "error": f"request larger than {self.max_line} bytes; send one JSON object per line, "
                                      f"at most {self.max_line} bytes"}

    def busy(self) -> dict[str, Any]:
        return {"ok": False, "error": f"busy: {self.max_connections} connections open; retry shortly"}

    def handle_line(self, line: bytes) -> dict[str, Any] | None:
        """The reply to one request line, without its newline; None sends nothing."""
        if self.skip_blank_lines and not line.strip():
            return None
        try:
            request = json.loads(line)
        except ValueError as exc:
            return self.not_json(exc)
        return self.handle(request)

    # Running ------------------------------------------------------------------------------------------
    def start(self) -> "JsonLinesServer":
        self._acceptor.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, shut every connection down and join the threads, all within ``timeout``."""
        self._stopping.set()
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        if self._acceptor.is_alive():
            self._acceptor.join(max(deadline - time.monotonic(), 0))
        with self._lock:
            threads = dict(self._threads)
        for conn in threads.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() or sendall()
            except OSError:
                pass
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        self._listener.close()

    def __enter__(self) -> "JsonLinesServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                self._stopping.wait(self._poll)
                continue
            with self._lock:  # stop() takes its list of connections under this lock: none is missed
                busy = self.max_connections is not None and len(self._threads) >= self.max_connections
                serve = not busy and not self._stopping.is_set()
                if serve:
                    t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                         name=f"{self.name}-conn-{self.port}")
                    self._threads[t] = conn
                    t.start()
            if busy:
                self._refuse(conn)
            elif not serve:
                conn.close()

    def _refuse(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._send(conn, self.busy(), timeout=1.0)  # the acceptor's own thread: never wait long
            except OSError:
                pass

    def _send(self, conn: socket.socket, reply: dict[str, Any], timeout: float) -> None:
        conn.settimeout(timeout)
        conn.sendall(json.dumps(reply).encode() + b"\n")

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            with conn:
                conn.settimeout(self.idle_timeout)
                while not self._stopping.is_set():
                    chunk = conn.recv(RECV_SIZE)
                    if not chunk:
                        return
                    buf += chunk
                    while (end := buf.find(b"\n")) >= 0 and end <= self.max_line:
                        line = bytes(buf[:end])
                        del buf[:end + 1]
                        reply = self.handle_line(line)
                        if reply is not None:
                            self._send(conn, reply, self.reply_timeout)
                            conn.settimeout(self.idle_timeout)
                    if len(buf) > self.max_line:
                        # No newline within the limit: the rest of the stream cannot be framed, so answer and close.
                        last_word = self.too_long()
                        if last_word is not None:
                            self._send(conn, last_word, self.reply_timeout)
                        return
        except OSError:
            return  # idle timeout, a reply nobody took, or the client went away: nobody left to answer
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)


# The client ---------------------------------------------------------------------------------------

def _closed_early(received: int) -> str:
    return f"the server closed the connection after {received} bytes without a full reply"


def read_line(sock: socket.socket, max_bytes: int = MAX_REPLY,
              closed: Callable[[int], str] = _closed_early) -> bytes:
    """One line from ``sock``, without its newline; ``ConnectionError`` if it ends first or grows too long.

    ``closed`` words the error for a peer that closes first, given the bytes received.
    """
    buf = bytearray()
    while True:
        chunk = sock.recv(RECV_SIZE)
        if not chunk:
            raise ConnectionError(closed(len(buf)))
        buf += chunk
        end = buf.find(b"\n")
        if end >= 0:
            return bytes(buf[:end])
        if len(buf) > max_bytes:
            raise ConnectionError(f"reply larger than {max_bytes} bytes")


def request_line(host: str, port: int, obj: Any, timeout: float, *, reply_timeout: float | None = None,
                 max_reply: int = MAX_REPLY, closed: Callable[[int], str] = _closed_early) -> bytes:
    """Send ``obj`` as one line on a new connection and return the reply line, undecoded.

    ``timeout`` bounds the connect and each socket operation; ``reply_timeout``
    (default ``timeout``) replaces it once connected, for requests that take long on purpose.
    Connection problems raise ``OSError``.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if reply_timeout is not None:
            sock.settimeout(reply_timeout)
        sock.sendall(json.dumps(obj).encode() + b"\n")
        return read_line(sock, max_reply, closed)


def request(host: str, port: int, obj: Any, timeout: float = 5.0, *, max_reply: int = MAX_REPLY,
            closed: Callable[[int], str] = _closed_early) -> dict[str, Any]:
    """:func:`request_line`, decoded; a reply that is not JSON raises ``ValueError``."""
    reply: dict[str, Any] = json.loads(request_line(host, port, obj, timeout, max_reply=max_reply, closed=closed))
    return reply


__all__ = ["JsonLinesServer", "request", "request_line", "read_line", "MAX_LINE", "REPLY_TIMEOUT", "MAX_REPLY"]
