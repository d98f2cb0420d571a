"""A careful submission: length-prefixed frames, and a deadline on every blocking call.

Every recv and send may wait at most TIMEOUT_S for progress; a peer that goes
quiet (frozen, vanished, not reading) becomes a TimeoutError instead of a hang.
A peer that closes is reported as ConnectionError, saying how much of the frame
had arrived. Expected on the lab: "reported correctly" or "survived" everywhere but
server-restart, where careful code reconnects and resends (this class reports the broken stream
instead and does not reconnect: "reported, did not recover").
"""

import socket
import struct

FRAMING = "length-prefixed"

HEADER = struct.Struct("!IB")        # payload length, frame type
MAX_PAYLOAD = 16 * 1024 * 1024       # refuse a header that asks for more than the lab ever sends
TIMEOUT_S = 3.0                      # longest wait for any progress, in either direction


class BrokenMessage(ConnectionError):
    """The peer closed the connection before a whole frame arrived."""


class MySocket:
    def __init__(self, sock=None):
        self.sock = sock if sock is not None else socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # With a timeout set, connect, send and recv raise TimeoutError instead of waiting forever.
        self.sock.settimeout(TIMEOUT_S)

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        view = memoryview(msg)
        while view:
            # Each send gets TIMEOUT_S to move at least one byte: a stalled peer is noticed,
            # a slow one is not punished for the size of the message.
            sent = self.sock.send(view)
            if sent == 0:
                raise BrokenMessage("the connection broke while sending")
            view = view[sent:]

    def myreceive(self):
        header = self._exactly(HEADER.size, "header")
        length, _ = HEADER.unpack(header)
        if length > MAX_PAYLOAD:
            raise BrokenMessage(f"the peer announced {length} bytes; at most {MAX_PAYLOAD} are accepted")
        return header + self._exactly(length, "payload")

    def _exactly(self, count, part):
        parts = []
        have = 0
        while have < count:
            chunk = self.sock.recv(min(count - have, 65536))
            if not chunk:
                if have == 0 and part == "header":
                    raise BrokenMessage("the peer closed the connection between messages")
                raise BrokenMessage(f"the peer closed the connection after {have} of {count} {part} bytes")
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def close(self):
        self.sock.close()
