"""Returns the previous reply instead of the current one (the first correctly): replies are checked by seq."""

import socket
import struct

FRAMING = "length-prefixed"
HEADER = struct.Struct("!IB")


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket()
        self.sock.settimeout(5)
        self.previous = None

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def myreceive(self):
        header = self._exactly(HEADER.size)
        reply = header + self._exactly(HEADER.unpack(header)[0])
        previous, self.previous = self.previous, reply
        return previous if previous is not None else reply

    def close(self):
        self.sock.close()
