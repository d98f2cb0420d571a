"""naive-two-writes and naive-walltime on real sockets: two send() calls per message with Nagle left on,
and a read deadline that follows time.time() (patched here to jump) instead of time.monotonic().

Every wait is bounded by the test itself: a socketpair whose far end says nothing, short deadlines,
and a timer that sends the reply when the deadline would otherwise never fire."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.sockets.framing import HEADER_SIZE, encode_echo
from lab.sockets.naive import BROKEN, LengthPrefixedSocket, TwoWritesSocket, WallClockDeadlineSocket, make_message

HOST = "127.0.0.1"
MSG = make_message(1, b"hello world")
REPLY = encode_echo(1, b"hello world")
MARGIN = 0.25


class CountingSocket:
    """Wraps a real socket to record each send() (a socket.socket takes no new attributes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: list[bytes] = []

    def connect(self, address: Any) -> None:
        self.sock.connect(address)

    def send(self, data: Any) -> int:
        n = self.sock.send(data)
        self.sends.append(bytes(data[:n]))
        return n

    def recv(self, bufsize: int) -> bytes:
        return self.sock.recv(bufsize)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.create_server((HOST, 0))
    yield srv
    srv.close()


def _read_all(sock: socket.socket, count: int) -> bytes:
    got = b""
    sock.settimeout(2.0)
    while len(got) < count:
        chunk = sock.recv(count - len(got))
        assert chunk, "peer closed early"
        got += chunk
    return got


# -- naive-two-writes -----------------------------------------------------------------------------

def test_two_writes_makes_two_sends_per_message_with_nagle_left_on(listener: socket.socket) -> None:
    real = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    counting = CountingSocket(real)
    conn = TwoWritesSocket(counting)
    conn.connect(HOST, listener.getsockname()[1])
    peer, _ = listener.accept()
    try:
        assert real.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        second = make_message(2, b"x" * 20)
        conn.mysend(MSG)
        conn.mysend(second)
        assert counting.sends == [MSG[:HEADER_SIZE], MSG[HEADER_SIZE:], second[:HEADER_SIZE], second[HEADER_SIZE:]]
        assert _read_all(peer, len(MSG) + len(second)) == MSG + second
        assert real.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0   # and never set along the way
    finally:
        peer.close()
        conn.close()


def test_two_writes_own_socket_is_plain_tcp_with_nagle_on(listener: socket.socket) -> None:
    conn = TwoWritesSocket()
    conn.connect(HOST, listener.getsockname()[1])
    peer, _ = listener.accept()
    try:
        sock = conn.sock
        assert isinstance(sock, socket.socket)
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        conn.mysend(MSG)
        peer.sendall(REPLY)
        assert _read_all(peer, len(MSG)) == MSG and conn.myreceive() == REPLY
    finally:
        peer.close()
        conn.close()


# -- naive-walltime ---------------------------------------------------------------------------------

@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


class WallClock:
    """time.time() with an offset the test moves; time.monotonic() is untouched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        self.real = time.time
        monkeypatch.setattr(time, "time", self.now)

    def now(self) -> float:
        return self.real() + self.offset


def test_walltime_without_a_jump_times_out_at_its_deadline(pair: Any) -> None:
    a, _ = pair
    sock = WallClockDeadlineSocket(a)
    sock.deadline_s = 0.3
    seen: list[float] = []
    sock.on_deadline = seen.append
    started, wall = time.monotonic(), time.time()
    with pytest.raises(TimeoutError) as info:
        sock.myreceive()
    took = time.monotonic() - started
    assert 0.3 - 0.01 <= took <= 0.3 + MARGIN, took
    assert str(info.value) == "no reply within 0.3 s (by the wall clock)"
    assert len(seen) == 1 and wall + 0.3 <= seen[0] <= wall + 0.3 + MARGIN


def test_walltime_reads_a_reply_that_arrives_in_pieces_under_one_deadline(pair: Any) -> None:
    a, b = pair
    sock = WallClockDeadlineSocket(a)
    sock.deadline_s = 2.0
    seen: list[float] = []
    sock.on_deadline = seen.append
    b.sendall(REPLY[:3])
    timer = threading.Timer(0.2, b.sendall, (REPLY[3:],))
    timer.start()
    try:
        assert sock.myreceive() == REPLY
    finally:
        timer.cancel()
    assert len(seen) == 1     # one deadline for header and payload, reported once


def test_walltime_peer_closing_is_connection_broken(pair: Any) -> None:
    a, b = pair
    sock = WallClockDeadlineSocket(a)
    b.sendall(REPLY[:HEADER_SIZE + 2])
    b.close()
    with pytest.raises(RuntimeError, match=f"^{BROKEN}$"):
        sock.myreceive()


def test_walltime_clock_jumping_forward_fires_the_deadline_at_once(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = pair
    clock = WallClock(monkeypatch)
    sock = WallClockDeadlineSocket(a)
    sock.deadline_s = 2.0
    sock.on_deadline = lambda deadline: setattr(clock, "offset", 3600.0)   # the jump, once the deadline is set
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        sock.myreceive()
    took = time.monotonic() - started
    assert took < 0.1, took                       # 2 s deadline, fired at once: a misfire
    assert str(info.value) == "no reply within 2 s (by the wall clock)"


def test_walltime_clock_jumping_back_makes_it_wait_past_its_deadline(pair: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    clock = WallClock(monkeypatch)
    sock = WallClockDeadlineSocket(a)
    sock.deadline_s = 0.3
    sock.on_deadline = lambda deadline: setattr(clock, "offset", -3600.0)
    # The test's own bound: the reply comes 1.2 s in (4 deadlines); a monotonic deadline would have fired at 0.3 s.
    timer = threading.Timer(1.2, b.sendall, (REPLY,))
    timer.start()
    started = time.monotonic()
    try:
        assert sock.myreceive() == REPLY
    finally:
        timer.cancel()
    took = time.monotonic() - started
    assert 1.2 - 0.01 <= took <= 1.2 + MARGIN, took


def test_a_monotonic_control_is_not_moved_by_the_same_jump(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sound LengthPrefixedSocket with a socket timeout (the kernel's monotonic clock) as the control.
    a, _ = pair
    clock = WallClock(monkeypatch)
    clock.offset = -3600.0
    a.settimeout(0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        LengthPrefixedSocket(a).myreceive()
    assert 0.3 - 0.01 <= time.monotonic() - started <= 0.3 + MARGIN
