"""The Socket Programming HOWTO's approach: every message is exactly MSGLEN bytes, no deadlines.

The send and receive loops are sound (partial sends and partial receives are
handled), so data is never corrupted; but nothing bounds a wait, so a peer that
stops answering without closing leaves myreceive blocked: "hung".
"""

import socket

FRAMING = "fixed"
MSGLEN = 1024


class MySocket:
    def __init__(self, sock=None):
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock = sock

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        done = 0
        while done < MSGLEN:
            n = self.sock.send(msg[done:])
            if n == 0:
                raise RuntimeError("socket connection broken")
            done += n

    def myreceive(self):
        pieces = []
        received = 0
        while received < MSGLEN:
            piece = self.sock.recv(min(MSGLEN - received, 2048))
            if piece == b"":
                raise RuntimeError("socket connection broken")
            pieces.append(piece)
            received += len(piece)
        return b"".join(pieces)

    def close(self):
        self.sock.close()
