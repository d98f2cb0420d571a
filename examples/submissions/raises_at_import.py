"""A submission that fails before any socket exists: module-level code raises.

Expected: every scenario "crashed", with the exception and its line in the evidence.
"""

import os

FRAMING = "length-prefixed"

# Reading configuration at import time is a common way to fail here.
SERVER = os.environ["MY_SERVER_ADDRESS"]


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        return self.sock.recv(65536)
