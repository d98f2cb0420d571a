"""A lab connection on which the server still owes bytes: a closed receive window keeps its kernel talking.

To prove that a fault stops what the server *sends*, the server must have something to
send after the fault. The subjects' conversations cannot promise that: once nothing reaches
the server, it has no request to answer and nothing to acknowledge. This connection can. It
asks the server for far more than its tiny receive buffer holds (a few thousand PINGs, each
answered by a PONG) and never reads, so its window closes with the rest of the answer still
queued at the server. From then on the server's kernel sends window probes on its own, with
growing gaps (0.2 s, 0.4 s, 0.8 s, ...), whatever happens to the subjects::

    owed = StalledReply(host, port).open()      # before the fault
    ...                                         # the probes die in OUTPUT, or reach the client
    owed.close()                                # RST; once the rules are gone the server hears it

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

from lab.sockets import framing

PINGS = 4096                 # 4096 PONGs of 13 bytes: about 53 kB, some ten times the receive buffer below
RECEIVE_BUFFER = 4096        # asked for before connecting, so the window it advertises stays small
SETTLE = 0.15                # the receive queue must stop growing this long: the window is closed


class StalledReply:
    def __init__(self, host: str, port: int, *, pings: int = PINGS) -> None:
        self.host, self.port, self.pings = host, port, pings
        self.sock: socket.socket | None = None
        self.local_port = 0
        self.queued = 0          # bytes of the answer waiting, unread, in this side's receive queue

    @property
    def answer(self) -> int:
        return self.pings * len(framing.encode_pong(0))

    @property
    def owed(self) -> int:
        """Bytes of the answer the server still has to send when the window closed."""
        return self.answer - self.queued

    def open(self, timeout: float = 3.0) -> "StalledReply":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock = sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.settimeout(timeout)
        sock.connect((self.host, self.port))
        self.local_port = sock.getsockname()[1]
        sock.sendall(b"".join(framing.encode_ping(n) for n in range(self.pings)))
        self._wait_closed(timeout)
        return self

    def _wait_closed(self, timeout: float) -> None:
        """Until the unread answer stops growing: the window is shut and the rest waits at the server."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.queued = self._unread()
            if self.queued != last:
                last, since = self.queued, time.monotonic()
            elif self.queued > 0 and time.monotonic() - since >= SETTLE:
                return
            time.sleep(0.01)

    def _unread(self) -> int:
        assert self.sock is not None
        raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])

    def close(self) -> None:
        """Abort (RST), so nothing of this connection lingers in the next run."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
