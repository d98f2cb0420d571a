"""Prints at import and in every call, and reads stdin: none of it may reach the driver protocol."""

import os
import sys

FRAMING = "length-prefixed"
print("hello from import")
sys.stdout.write('{"ok": true}\n')
sys.stdout.flush()
os.write(1, b'{"ok": false, "error": "Forged"}\n')
STDIN = sys.stdin.read()   # /dev/null in the adapter: nothing of the protocol


class MySocket:
    def __init__(self, sock=None):
        print("init")
        self.sent = []

    def connect(self, host, port):
        print("connect", host, port)

    def mysend(self, msg):
        print('{"ok": true}')
        self.sent.append(msg)

    def myreceive(self):
        print("myreceive; stdin held", len(STDIN), "bytes", flush=True)
        msg = self.sent.pop(0)
        return msg[:4] + bytes([3]) + msg[5:]
