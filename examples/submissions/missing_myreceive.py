"""A submission without myreceive: refused on the host, before anything reaches the lab."""

import socket

FRAMING = "fixed"
MSGLEN = 1024


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def receive(self):   # the lab calls myreceive(); this name is never used
        return self.sock.recv(MSGLEN)
