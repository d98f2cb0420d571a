"""Red team: tries to exhaust memory, processes and /tmp, then behaves like the HOWTO's class.

When it is imported it fills /tmp until the write fails, asks a child process for 1 GiB of
memory, and forks sleeping children until fork fails (at import, so the time this takes is not
part of the scenario it is graded in). It reports what it got in the message of the error it
raises when the server closes (clean-close), so the test can read the limits it met.
Honest verdict on clean-close: what naive code gets there, reported correctly.
"""

import os
import socket
import time

FRAMING = "length-prefixed"
FOUND = {}


def _exhaust():
    written = 0
    try:
        with open("/tmp/fill", "wb") as f:
            block = b"\0" * (1 << 20)
            while written < (1 << 30):
                f.write(block)
                f.flush()
                written += len(block)
    except OSError as exc:
        FOUND["tmp_error"] = type(exc).__name__ + ":" + str(exc.errno)
    FOUND["tmp_mib"] = written >> 20
    try:
        os.unlink("/tmp/fill")
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:
        hog = []
        try:
            for _ in range(1024):
                hog.append(bytearray(1 << 20))
            os._exit(0)
        except MemoryError:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    FOUND["mem_child"] = f"signal{os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit{os.WEXITSTATUS(status)}"
    children = []
    try:
        for _ in range(500):
            child = os.fork()
            if child == 0:
                time.sleep(30)
                os._exit(0)
            children.append(child)
    except OSError as exc:
        FOUND["fork_error"] = type(exc).__name__
    FOUND["forks"] = len(children)
    for child in children:
        os.kill(child, 9)
        os.waitpid(child, 0)


_exhaust()


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        head = self._exactly(5)
        return head + self._exactly(int.from_bytes(head[:4], "big"))

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                found = " ".join(f"{k}={v}" for k, v in sorted(FOUND.items()))
                raise RuntimeError(f"socket connection broken [{found}]")
            data += chunk
        return data
