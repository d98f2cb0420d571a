"""Honest: the HOWTO's fixed-length class as written, with small messages (MSGLEN = 64, no FRAMING).

Every message is exactly 64 bytes; send and recv loop until the whole message has moved, and
nothing has a deadline. The lab carries each workload body as consecutive 64-byte messages, so
a cut lands inside one of them and a bandwidth limit meets every byte. Expected:
mid-message-cut and clean-close "reported correctly" (RuntimeError), bandwidth "survived".
"""

import socket

MSGLEN = 64


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        totalsent = 0
        while totalsent < MSGLEN:
            sent = self.sock.send(msg[totalsent:])
            if sent == 0:
                raise RuntimeError("socket connection broken")
            totalsent += sent

    def myreceive(self):
        chunks = []
        received = 0
        while received < MSGLEN:
            chunk = self.sock.recv(min(MSGLEN - received, 2048))
            if chunk == b"":
                raise RuntimeError("socket connection broken")
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)
