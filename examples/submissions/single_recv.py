"""A classic mistake: one recv call is taken to be one whole message.

On a quiet local network each reply often does arrive in one piece, so this
seems to work; when the stream is cut into small segments (the fragmentation
scenario) myreceive returns a piece of a reply: "returned corrupt data".
"""

import socket

FRAMING = "length-prefixed"


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        data = self.sock.recv(65536)   # wrong: whatever has arrived, not one frame
        if not data:
            raise RuntimeError("socket connection broken")
        return data

    def close(self):
        self.sock.close()
