"""Honest, and wrong: when the connection breaks it reconnects and sends everything again.

It keeps every frame it ever sent. When a send or a receive fails it reconnects (with a short
backoff, for up to 5 s) and resends the whole log, reading a reply for each, so the stream
goes on as if nothing happened. Every reply it returns is real, but the server receives the
messages from before the break twice. Expected on server-restart: "delivered twice".
"""

import socket
import struct
import time

FRAMING = "length-prefixed"
HEADER = struct.Struct("!IB")


class MySocket:
    def __init__(self, sock=None):
        self.sock = None
        self.log = []
        self.where = None

    def connect(self, host, port):
        self.where = (host, port)
        self._open()

    def _open(self):
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.sock = socket.create_connection(self.where, timeout=3.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def mysend(self, msg):
        self.log.append(bytes(msg))
        try:
            self.sock.sendall(msg)
        except OSError:
            self._again()

    def myreceive(self):
        try:
            return self._frame()
        except OSError:
            return self._again()

    def _again(self):
        # Reconnect and replay the whole log; the last reply answers the message just sent.
        try:
            self.sock.close()
        except OSError:
            pass
        self._open()
        reply = None
        for frame in self.log:
            self.sock.sendall(frame)
            reply = self._frame()
        return reply

    def _frame(self):
        head = self._exactly(HEADER.size)
        return head + self._exactly(HEADER.unpack(head)[0])

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("the peer closed the connection")
            data += chunk
        return data

    def close(self):
        if self.sock is not None:
            self.sock.close()
