"""The thread-per-connection lab server: blocking sockets, one daemon thread per client.

This is the HOWTO's "dispatch a thread per client socket" shape. Every blocking
call has a short timeout only so that the thread can look up and notice
``stop()`` or a behaviour change; a timeout here is never a failure. A client
that dies mid-message costs only its own thread.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from lab.server.base import ACCEPT_PAUSE, BaseServer, peer_name
from lab.server.protocol import ServerConnection


class ThreadedServer(BaseServer):
    impl = "threaded"

    def _start(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        assert self._listener is not None
        self._listener.settimeout(self.poll_interval)
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"threaded-accept-{self.port}",
                                          daemon=True)
        self._acceptor.start()

    def _stop(self, deadline: float) -> None:
        self._acceptor.join(max(deadline - time.monotonic(), 0))
        with self._threads_lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self.behaviour().accepting:
                # Leave SYNs in the kernel's backlog: the full-backlog scenario.
                self._stopping.wait(self.poll_interval)
                continue
            # Wait for a pending connection first and accept it only if the behaviour still says
            # so: a connection that arrives just after "stop accepting" must stay in the backlog,
            # not be taken by an accept() that was already waiting.
            ready, _, _ = select.select([self._listener], [], [], self.poll_interval)
            if not ready:
                continue
            try:
                taken = self._accept_if_accepting()
            except TimeoutError:   # the client went away between select() and accept()
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                # EMFILE and friends: note it and stop accepting a moment. The connection stays in
                # the backlog and select() says readable again at once: retrying now would spin.
                self.emit("error", **self.stats_.error(None, exc))
                self._stopping.wait(ACCEPT_PAUSE)
                continue
            if taken is None:
                continue
            sock, addr = taken
            core = self._new_connection(sock, addr)
            t = threading.Thread(target=self._serve, args=(sock, core, peer_name(addr)),
                                 name=f"threaded-conn-{core.conn_id}", daemon=True)
            with self._threads_lock:
                self._threads.add(t)
            t.start()

    def _serve(self, sock: socket.socket, core: ServerConnection, peer: str) -> None:
        try:
            self._serve_blocking(sock, core, peer, stopping=self._stopping.is_set, pause=self._stopping.wait)
        finally:
            with self._threads_lock:
                self._threads.discard(threading.current_thread())


__all__ = ["ThreadedServer"]
