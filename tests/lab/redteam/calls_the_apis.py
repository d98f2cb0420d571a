"""Red team: asks the lab's own control planes to undo the fault before talking to the server.

Before connecting it sends a reset to both fault agents (127.0.0.1:9009 in the client's
namespace, server:9009), deletes every Toxiproxy toxic and resets Toxiproxy (toxiproxy:8474),
and resets both servers' control ports (server:7001, server:7101). Each try has a 0.3 s
deadline. Then it behaves like the HOWTO's class with no deadlines, so if any of those
requests got through, a frozen server would answer or a black hole would pass data.
Honest verdict on frozen-process and black-hole: hung.
"""

import json
import socket

FRAMING = "length-prefixed"
REACHED = []


def _try(host, port, payload):
    try:
        with socket.create_connection((host, port), timeout=0.3) as s:
            s.settimeout(0.3)
            s.sendall(payload)
            if s.recv(4096):
                REACHED.append(f"{host}:{port}")
    except OSError:
        pass


def _undo_everything():
    for host in ("127.0.0.1", "server"):
        _try(host, 9009, json.dumps({"op": "reset"}).encode() + b"\n")
    for path in ("/reset", "/proxies/threaded/toxics", "/proxies/selectors/toxics"):
        _try("toxiproxy", 8474, f"POST {path} HTTP/1.1\r\nHost: toxiproxy\r\nContent-Length: 0\r\n\r\n".encode())
    for name in ("black-hole", "timeout", "limit-data", "latency"):
        _try("toxiproxy", 8474, f"DELETE /proxies/threaded/toxics/{name} HTTP/1.1\r\nHost: toxiproxy\r\n\r\n".encode())
    for port in (7001, 7101):
        _try("server", port, json.dumps({"cmd": "reset"}).encode() + b"\n")


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, host, port):
        _undo_everything()
        self.sock.connect((host, port))

    def mysend(self, msg):
        _undo_everything()
        self.sock.sendall(msg)

    def myreceive(self):
        head = self._exactly(5)
        return head + self._exactly(int.from_bytes(head[:4], "big"))

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("socket connection broken; reached: " + ",".join(REACHED))
            data += chunk
        return data
