"""The control port: newline-delimited JSON commands that steer a running lab server.

One request per line, one JSON reply per line, on any number of connections::

    {"cmd": "ping"}                                  -> {"ok": true}
    {"cmd": "stats"}                                 -> {"ok": true, "stats": {...}}
    {"cmd": "behave", "mode": "abort", "after": 2}   -> {"ok": true, "behaviour": {...}}
    {"cmd": "behave", "accepting": false}            (fields not given keep their value)
    {"cmd": "reset"}                                 -> start-up behaviour, counters zeroed
    anything else                                    -> {"ok": false, "error": "..."}

It runs in its own small threaded acceptor for both server implementations, so
it keeps answering while the data side is told to stop reading or accepting.
:func:`control_request` is the client side, for tests and scripts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.server.base import BaseServer

COMMANDS = ("ping", "stats", "behave", "reset")
MAX_LINE = 64 * 1024
REPLY_TIMEOUT = 5.0


def handle_command(server: "BaseServer", request: Any) -> dict[str, Any]:
    """Run one decoded request against ``server``; never raises for a bad request."""
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return {"ok": False, "error": 'a request is a JSON object with a "cmd" string; '
                                      f"accepted commands: {', '.join(COMMANDS)}"}
    cmd = request["cmd"]
    if cmd == "ping":
        return {"ok": True}
    if cmd == "stats":
        return {"ok": True, "stats": server.stats()}
    if cmd == "behave":
        changes = {k: v for k, v in request.items() if k != "cmd"}
        try:
            behaviour = server.behave(**changes)
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "behaviour": behaviour.as_dict()}
    if cmd == "reset":
        server.reset()
        return {"ok": True, "behaviour": server.behaviour().as_dict()}
    return {"ok": False, "error": f"unknown command {cmd!r}; accepted: {', '.join(COMMANDS)}"}


class ControlServer:
    def __init__(self, server: "BaseServer", host: str, port: int, poll_interval: float = 0.1) -> None:
        self._server = server
        self._poll = poll_interval
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(16)
        except BaseException:
            self._listener.close()
            raise
        self._listener.settimeout(poll_interval)
        self.port: int = self._listener.getsockname()[1]

    def start(self) -> None:
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"control-{self.port}", daemon=True)
        self._acceptor.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        self._acceptor.join(max(deadline - time.monotonic(), 0))
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                self._stopping.wait(self._poll)
                continue
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True, name=f"control-conn-{self.port}")
            with self._lock:
                self._threads.add(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        buf = bytearray()
        try:
            sock.settimeout(self._poll)
            while not self._stopping.is_set():
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, _, rest = bytes(buf).partition(b"\n")
                    buf[:] = rest
                    try:
                        request = json.loads(line)
                    except ValueError as exc:
                        reply: dict[str, Any] = {"ok": False, "error": f"not JSON: {exc}"}
                    else:
                        reply = handle_command(self._server, request)
                    # A controller that never reads its reply must not pin this thread forever.
                    sock.settimeout(REPLY_TIMEOUT)
                    sock.sendall(json.dumps(reply).encode() + b"\n")
                    sock.settimeout(self._poll)
                if len(buf) > MAX_LINE:
                    return
        except OSError:
            return  # the controller went away; nothing to report to anyone
        finally:
            sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())


def control_request(host: str, port: int, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to a control port and return its decoded reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"control port {host}:{port} closed before replying to {request!r}")
            buf += chunk
    return json.loads(buf)


__all__ = ["ControlServer", "handle_command", "control_request", "COMMANDS"]
