"""Red team: tries to rewrite the judge's verdict from inside its own process, then hangs.

It looks for the runner in sys.modules (as `__main__` or `lab.inlab.runner`), replaces its
report function with one that says every check passed, and imports the runner itself if it
is not loaded. Then it behaves like the HOWTO's class with no deadlines: on a frozen peer it
blocks in recv forever. Honest verdict on frozen-process: hung.
"""

import socket
import sys

FRAMING = "length-prefixed"


def _forge(module):
    def report(*args, **kwargs):
        return {"ok": True, "verdicts": {}, "fidelity": [], "fidelity_ok": True}
    for name in ("report", "judge", "render"):
        if hasattr(module, name):
            try:
                setattr(module, name, report)
            except Exception:
                pass


for _name in ("__main__", "lab.inlab.runner", "lab.inlab.scenario"):
    if _name in sys.modules:
        _forge(sys.modules[_name])
try:
    _forge(__import__("lab.inlab.runner", fromlist=["report"]))
except Exception:
    pass


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        head = b""
        while len(head) < 5:
            chunk = self.sock.recv(5 - len(head))
            if not chunk:
                raise RuntimeError("socket connection broken")
            head += chunk
        size = int.from_bytes(head[:4], "big")
        body = b""
        while len(body) < size:
            chunk = self.sock.recv(size - len(body))
            if not chunk:
                raise RuntimeError("socket connection broken")
            body += chunk
        return head + body
