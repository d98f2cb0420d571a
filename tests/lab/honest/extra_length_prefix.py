"""Honest, but speaking another protocol: it puts its own 4-byte length in front of every frame.

The server reads those 4 bytes as the start of a frame header, finds a frame it cannot accept
and closes the connection; this code then fails parsing the server's silence. Expected on
clean-close: "protocol mismatch", quoting what was sent and how the server answered.
"""

import socket
import struct

FRAMING = "length-prefixed"


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(3.0)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(struct.pack("!I", len(msg)) + msg)

    def myreceive(self):
        head = self.sock.recv(4)
        (length,) = struct.unpack("!I", head)   # b"" after the server's close: struct.error
        return self.sock.recv(length)
