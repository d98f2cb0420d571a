"""A close() that never returns, and a thread that would keep a normal interpreter alive."""

import threading
import time

FRAMING = "length-prefixed"


class MySocket:
    def __init__(self, sock=None):
        threading.Thread(target=time.sleep, args=(60,)).start()   # not a daemon

    def connect(self, host, port):
        pass

    def mysend(self, msg):
        self.msg = msg

    def myreceive(self):
        return self.msg[:4] + bytes([3]) + self.msg[5:]

    def close(self):
        time.sleep(60)
