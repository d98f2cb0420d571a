"""The HOWTO-style sockets against real misbehaving peers on 127.0.0.1: each test names the failure,
asserts the exact exception (or the hang) and how long it took to show up.

Some peers are the lab servers acting out a behaviour; peers that must cut a
frame in half are a few lines of raw socket code here (the servers only ever
close between messages).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.sockets.framing import HEADER_SIZE, encode_echo
from lab.sockets.naive import IgnoreSendReturnSocket, LengthPrefixedSocket, MySocket, SingleRecvSocket, make_message
from lab.testing import running_server

HOST = "127.0.0.1"
IMPLS = ["threaded", "selectors", "forking"]


class CountingSocket:
    """Wraps a real socket to record what each send returned (a socket.socket takes no new attributes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: list[tuple[int, int]] = []  # (offered, accepted)

    def connect(self, address: Any) -> None:
        self.sock.connect(address)

    def send(self, data: Any) -> int:
        n = self.sock.send(data)
        self.sends.append((len(data), n))
        return n

    def recv(self, bufsize: int) -> bytes:
        return self.sock.recv(bufsize)

    def close(self) -> None:
        self.sock.close()

    @property
    def accepted(self) -> int:
        return sum(n for _, n in self.sends)


def tiny_sndbuf_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    # CPython sends partially only when the socket has a timeout (it is non-blocking underneath);
    # a fully blocking Linux send waits until everything is copied. The timeout is far beyond
    # any test and never fires: the naive code still has no deadline of its own.
    sock.settimeout(60)
    return sock


@contextlib.contextmanager
def raw_peer(script: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection listener on 127.0.0.1 that runs ``script`` on the accepted socket."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(1)
    listener.settimeout(10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                script(conn)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield listener.getsockname()[1]
    finally:
        t.join(10)
        listener.close()
    assert not t.is_alive(), "the raw peer did not finish"
    if errors:
        raise errors[0]


def read_frame(conn: socket.socket) -> bytes:
    buf = b""
    while len(buf) < HEADER_SIZE or len(buf) < HEADER_SIZE + struct.unpack("!I", buf[:4])[0]:
        chunk = conn.recv(65536)
        assert chunk, "client closed early"
        buf += chunk
    return buf


# -- partial sends ----------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_send_loop_survives_partial_sends_with_a_tiny_sndbuf(impl: str) -> None:
    msg = make_message(1, bytes(range(256)) * 4096)  # 1 MiB body
    with running_server(impl) as srv:
        sock = CountingSocket(tiny_sndbuf_socket())
        naive = LengthPrefixedSocket(sock)
        naive.connect(HOST, srv.port)
        start = time.monotonic()
        naive.mysend(msg)
        reply = naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
    assert any(n < offered for offered, n in sock.sends), "the kernel never sent partially"
    assert sock.accepted == len(msg)
    assert reply == encode_echo(1, bytes(range(256)) * 4096)
    assert elapsed < 10


@pytest.mark.parametrize("impl", IMPLS)
def test_ignoring_send_return_loses_bytes_with_a_tiny_sndbuf(impl: str) -> None:
    msg = make_message(1, b"z" * (1 << 20))
    with running_server(impl) as srv:
        sock = CountingSocket(tiny_sndbuf_socket())
        naive = IgnoreSendReturnSocket(sock)
        naive.connect(HOST, srv.port)
        start = time.monotonic()
        naive.mysend(msg)  # returns quickly, "successfully"
        assert time.monotonic() - start < 2
        assert len(sock.sends) == 1 and sock.accepted < len(msg)
        time.sleep(0.3)
        assert srv.stats()["delivered"] == 0  # the server still waits for the lost tail
        naive.close()
        deadline = time.monotonic() + 5
        while srv.stats()["errors"].get("IncompleteMessage", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = srv.stats()
    assert stats["delivered"] == 0
    assert stats["errors"] == {"IncompleteMessage": 1}
    record = stats["error_log"][0]
    assert record["received"] == sock.accepted and record["expected"] == len(msg)


# -- a dribbling peer ------------------------------------------------------------------------------

DRIBBLE = encode_echo(7, b"drip" * 5)  # 33 bytes
DRIP = 0.01


def _dribble(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read_frame(conn)
    for i in range(len(DRIBBLE)):
        conn.sendall(DRIBBLE[i:i + 1])
        time.sleep(DRIP)


def test_length_prefixed_receives_a_dribbled_reply_whole() -> None:
    with raw_peer(_dribble) as port:
        naive = LengthPrefixedSocket()
        naive.connect(HOST, port)
        naive.mysend(make_message(7, b"drip" * 5))
        start = time.monotonic()
        reply = naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
    assert reply == DRIBBLE
    assert (len(DRIBBLE) - 1) * DRIP <= elapsed < 5


def test_fixed_length_receives_a_dribbled_reply_whole() -> None:
    with raw_peer(_dribble) as port:
        naive = MySocket(len(DRIBBLE))
        naive.connect(HOST, port)
        naive.mysend(make_message(7, b"drip" * 5))
        start = time.monotonic()
        reply = naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
    assert reply == DRIBBLE
    assert (len(DRIBBLE) - 1) * DRIP <= elapsed < 5


def test_single_recv_returns_a_truncated_reply_from_a_dribbling_peer() -> None:
    with raw_peer(_dribble) as port:
        naive = SingleRecvSocket()
        naive.connect(HOST, port)
        naive.mysend(make_message(7, b"drip" * 5))
        start = time.monotonic()
        reply = naive.myreceive()
        elapsed = time.monotonic() - start
        time.sleep(len(DRIBBLE) * DRIP + 0.2)  # let the peer finish before closing
        naive.close()
    assert 0 < len(reply) < len(DRIBBLE)
    assert DRIBBLE.startswith(reply)
    assert elapsed < (len(DRIBBLE) - 1) * DRIP  # it did not wait for the rest


# -- EOF and RST mid-frame --------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [2, HEADER_SIZE + 3])
def test_eof_mid_frame_is_connection_broken(cut: int) -> None:
    def half_then_fin(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(DRIBBLE[:cut])
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)

    with raw_peer(half_then_fin) as port:
        naive = LengthPrefixedSocket()
        naive.connect(HOST, port)
        naive.mysend(make_message(7, b"drip" * 5))
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="^socket connection broken$"):
            naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
    assert elapsed < 1.0


def test_rst_mid_frame_is_connection_reset() -> None:
    def half_then_rst(conn: socket.socket) -> None:
        read_frame(conn)
        conn.sendall(DRIBBLE[:HEADER_SIZE + 3])
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with raw_peer(half_then_rst) as port:
        naive = LengthPrefixedSocket()
        naive.connect(HOST, port)
        naive.mysend(make_message(7, b"drip" * 5))
        start = time.monotonic()
        with pytest.raises(ConnectionResetError):
            naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
    assert elapsed < 1.0


@pytest.mark.parametrize("impl", IMPLS)
def test_server_abort_after_a_message_is_connection_reset(impl: str) -> None:
    with running_server(impl) as srv:
        srv.behave(mode="abort", after=1, ack_last=False)  # delivered, never acknowledged: RST instead
        naive = LengthPrefixedSocket()
        naive.connect(HOST, srv.port)
        naive.mysend(make_message(1, b"lost ack"))
        start = time.monotonic()
        with pytest.raises(ConnectionResetError):
            naive.myreceive()
        elapsed = time.monotonic() - start
        naive.close()
        assert srv.stats()["delivered"] == 1
    assert elapsed < 1.0


# -- a peer that stops reading ----------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_send_blocks_forever_when_the_peer_stops_reading(impl: str) -> None:
    with running_server(impl) as srv:
        srv.behave(mode="stop_reading")
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock = CountingSocket(raw)
        naive = LengthPrefixedSocket(sock)  # plain blocking: no timeout anywhere, as written
        naive.connect(HOST, srv.port)
        outcome: list[BaseException] = []

        def pump() -> None:
            try:
                for seq in range(1, 10_000):
                    naive.mysend(make_message(seq, b"b" * 65536))
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        # Watchdog: wait until it is stuck, then check it stays stuck.
        time.sleep(1.0)
        stuck_at = sock.accepted
        time.sleep(1.0)
        assert t.is_alive(), f"send returned: {outcome!r}"
        assert sock.accepted == stuck_at, "send was still making progress"
        assert outcome == []
        # Clean up from outside: shutdown (not close) wakes a thread blocked in send on Linux.
        raw.shutdown(socket.SHUT_RDWR)
        t.join(5)
        assert not t.is_alive()
        raw.close()
    assert len(outcome) == 1 and type(outcome[0]) is BrokenPipeError
    assert 0 < stuck_at < 100 * 65536


# -- nobody listening -------------------------------------------------------------------------------

def test_connect_to_a_port_nobody_listens_on_is_refused_quickly() -> None:
    placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    placeholder.bind((HOST, 0))  # bound, never listening: the port stays ours and refuses
    port = placeholder.getsockname()[1]
    try:
        naive = LengthPrefixedSocket()
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            naive.connect(HOST, port)
        elapsed = time.monotonic() - start
        naive.close()
    finally:
        placeholder.close()
    assert elapsed < 0.5
