"""Each method fails in its own way, as the test asks through MODE (set by the test with connect's host)."""

import errno
import socket
import time

FRAMING = "fixed"
MSGLEN = 64


class Stop(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


class MySocket:
    def __init__(self, sock=None):
        self.mode = None

    def connect(self, host, port):
        # The "host" picks the failure: these files never reach a real server.
        self.mode = host

    def mysend(self, msg):
        if self.mode == "exit":
            raise SystemExit(3)
        if self.mode == "reset":
            raise ConnectionResetError(errno.ECONNRESET, "peer reset")
        if self.mode == "odd-errno":
            exc = OSError("odd")
            exc.errno = 99999
            raise exc
        if self.mode == "bad-str":
            raise Stop()
        self.msg = msg

    def myreceive(self):
        if self.mode == "none":
            return None
        if self.mode == "block":
            time.sleep(30)   # bounded: the test kills or unblocks long before
        if self.mode == "interrupt":
            raise KeyboardInterrupt
        return self.msg[:4] + bytes([3]) + self.msg[5:]
