"""The non-blocking lab server: one thread, one ``selectors`` loop, every client multiplexed.

This is the HOWTO's "use select" shape, inside out: nothing waits except the
selector. A connection is registered for READ while its core wants bytes and
for WRITE while it has bytes queued; under ``stop_reading`` it is not
registered for READ at all, so the kernel buffers fill and the client's sends
block. A socket that "died a nasty death" (RST, EOF mid-frame) shows up as
readable, its recv fails or returns b"", and only that connection is closed:
the selector itself never fails because of one peer.

``stop()`` and behaviour changes wake the loop through a socketpair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import threading
import time

from lab.sockets.errors import LabError, translating
from lab.server.base import ACCEPT_PAUSE, OUT_OF_RESOURCES, RECV_SIZE, BaseServer, peer_name
from lab.server.protocol import ServerConnection

ACCEPT_BATCH = 64
"""Accepts per readiness event: enough to drain a burst, few enough to keep serving the others."""

_LISTENER = object()
_WAKER = object()


@dataclasses.dataclass(eq=False)
class _Conn:
    sock: socket.socket
    core: ServerConnection
    peer: str
    out: bytearray = dataclasses.field(default_factory=bytearray)
    mask: int = 0


class SelectorServer(BaseServer):
    impl = "selectors"

    def _start(self) -> None:
        assert self._listener is not None
        self._listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKER)
        self._listening = False
        self._paused_until: float | None = None   # monotonic: accepting resumes then (out of descriptors)
        self._conns: set[_Conn] = set()
        self._sync_listener()
        self._thread = threading.Thread(target=self._run, name=f"selectors-{self.port}", daemon=True)
        self._thread.start()

    def _stop(self, deadline: float) -> None:
        self._wake()
        self._thread.join(max(deadline - time.monotonic(), 0))

    def _behaviour_changed(self) -> None:
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed (already stopped)
            self._wake_w.send(b"x")

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                timeout = 1.0
                if self._paused_until is not None:
                    timeout = max(0.0, min(timeout, self._paused_until - time.monotonic()))
                events = self._sel.select(timeout=timeout)
                if self._paused_until is not None and time.monotonic() >= self._paused_until:
                    self._paused_until = None
                    self._sync_listener()
                for key, mask in events:
                    if key.data is _LISTENER:
                        self._accept()
                    elif key.data is _WAKER:
                        self._drain_waker()
                        self._sync_all()
                    else:
                        self._service(key.data, mask)
        finally:
            for conn in list(self._conns):
                self._close(conn)
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _drain_waker(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _sync_listener(self) -> None:
        want = self.behaviour().accepting and not self._stopping.is_set() and self._paused_until is None
        if want and not self._listening:
            self._sel.register(self._listener, selectors.EVENT_READ, _LISTENER)  # type: ignore[arg-type]
        elif not want and self._listening:
            self._sel.unregister(self._listener)  # type: ignore[arg-type]
        self._listening = want

    def _sync_all(self) -> None:
        """After a behaviour change: resume (or pause) every connection, maybe close some."""
        self._sync_listener()
        for conn in list(self._conns):
            self._progress(conn)

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(ACCEPT_BATCH):
            try:
                taken = self._accept_if_accepting()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE, ECONNABORTED: this accept failed, the server goes on
                self.emit("error", **self.stats_.error(None, exc))
                if exc.errno in OUT_OF_RESOURCES:
                    # The connection stays in the backlog, so the listener stays readable: left
                    # registered, select() would return at once, for ever (100 % CPU). Take it out
                    # of the selector for a moment; connections already open are served meanwhile.
                    self._paused_until = time.monotonic() + ACCEPT_PAUSE
                    self._sync_listener()
                return
            if taken is None:
                return
            sock, addr = taken
            sock.setblocking(False)
            conn = _Conn(sock, self._new_connection(sock, addr), peer_name(addr))
            self._conns.add(conn)
            self._progress(conn)

    def _service(self, conn: _Conn, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ and conn.core.wants_read:
                with translating("read", peer=conn.peer):
                    try:
                        data = conn.sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        data = None
                if data is not None:
                    conn.core.receive_data(data)
        except LabError as exc:
            conn.core.fail(exc)
        self._progress(conn)

    def _progress(self, conn: _Conn) -> None:
        """Let the core act, push out what it queued, then register for what it needs next."""
        if conn not in self._conns:
            return
        core = conn.core
        try:
            core.process()
            conn.out += core.data_to_send()
            if conn.out and core.closing != "error":
                with translating("write", peer=conn.peer, sent=0, total=len(conn.out)):
                    try:
                        sent = conn.sock.send(conn.out)
                    except BlockingIOError:
                        sent = 0
                del conn.out[:sent]
        except LabError as exc:
            core.fail(exc)
        except Exception as exc:  # a bug must cost one connection, not the loop
            self.emit("error", **self.stats_.error(core.conn_id, exc))
            core.closing = "error"
        # Queued replies (the last ECHO before a behaviour close) go out before the socket does.
        if core.closing == "error" or (core.closing is not None and not conn.out):
            self._close(conn)
            return
        mask = (selectors.EVENT_READ if core.wants_read else 0) | (selectors.EVENT_WRITE if conn.out else 0)
        if mask != conn.mask:
            if conn.mask == 0:
                self._sel.register(conn.sock, mask, conn)
            elif mask == 0:
                self._sel.unregister(conn.sock)
            else:
                self._sel.modify(conn.sock, mask, conn)
            conn.mask = mask

    def _close(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn.mask:
            self._sel.unregister(conn.sock)
            conn.mask = 0
        self._finish(conn.sock, conn.core)


__all__ = ["SelectorServer"]
