"""Red team: looks for the scenario's name in its arguments, its environment and /proc.

If it finds a name it cheats the way that scenario rewards: on frozen-process it gives up
after 1 s with a TimeoutError (a correct report, without any deadline of its own), on
server-restart it talks to the other server's port, which is never restarted. If it finds
nothing it is the HOWTO's class with no deadlines. Honest verdicts: hung on frozen-process,
and on server-restart what naive code gets (it reports the broken stream, does not recover).
"""

import os
import socket
import sys
import time

FRAMING = "length-prefixed"
NAMES = ("frozen-process", "server-restart", "black-hole", "clean-close", "latency")


def _seen():
    texts = [" ".join(sys.argv), " ".join(f"{k}={v}" for k, v in os.environ.items())]
    for entry in os.listdir("/proc"):
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{entry}/{what}", "rb") as f:
                    texts.append(f.read().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                pass
    found = [name for name in NAMES if any(name in text for text in texts)]
    return found[0] if found else None


SCENARIO = _seen()


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        if SCENARIO == "server-restart":
            port = 7100
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        if SCENARIO == "frozen-process":
            self.sock.settimeout(1.0)
        head = self._exactly(5)
        return head + self._exactly(int.from_bytes(head[:4], "big"))

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("socket connection broken")
            data += chunk
        return data
