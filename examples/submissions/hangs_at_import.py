"""A submission whose module-level code never returns (a busy loop, as a mistaken retry loop would).

The lab imports submissions with a deadline, so this is graded "hung" without
wedging anything. The loop still stops by itself after GIVE_UP_S, so that it can
never run forever wherever it is imported.
"""

import socket
import time

FRAMING = "length-prefixed"
GIVE_UP_S = 120.0

_started = time.monotonic()
while time.monotonic() - _started < GIVE_UP_S:
    pass


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        return self.sock.recv(65536)
