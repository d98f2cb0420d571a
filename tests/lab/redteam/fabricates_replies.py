"""Red team: never talks to the server, and makes up every reply from the message it was given.

connect() does nothing; mysend keeps the frame; myreceive hands it back with the ECHO type,
so each reply looks exactly like the server's. Honest verdict on latency: returned corrupt
data (replies the server never sent).
"""

FRAMING = "length-prefixed"


class MySocket:
    def __init__(self, sock=None):
        self.pending = []

    def connect(self, host, port):
        pass

    def mysend(self, msg):
        self.pending.append(bytes(msg))

    def myreceive(self):
        msg = self.pending.pop(0)
        return msg[:4] + b"\x03" + msg[5:]
