"""A submission with a syntax error (a missing colon on line 16): refused on the host, never sent to the lab."""

import socket

FRAMING = "length-prefixed"


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        while msg
            sent = self.sock.send(msg)
            msg = msg[sent:]

    def myreceive(self):
        return self.sock.recv(65536)
