"""RobustConnection against real misbehaving peers on 127.0.0.1 and socketpairs.

Each test names one way a conversation dies and asserts both the exact error
class and the time window in which it must be reported. Windows are the
configured bound plus slack for this noisy machine, never "eventually".
"""

from __future__ import annotations

import errno
import select
import socket
import threading
import time

import pytest

from lab.sockets import framing
from lab.sockets.errors import (
    BrokenPipe, ConnectRefused, FrameTooLarge, IncompleteMessage, PeerClosed, PeerReset, PeerUnresponsive,
    SendStalled,
)
from lab.sockets.framing import FrameType
from lab.sockets.robust import RobustConfig, RobustConnection
from lab.sockets.timeouts import Timeouts
from tests.support.peers import (
    abort, accept, background, drain, listening, read_frames, serve_echo, unused_port,
)

FAST = RobustConfig(timeouts=Timeouts(connect=1.0, read=5.0, write=2.0, idle=10.0),
                    heartbeat_interval=0.2, dead_after=0.8)
QUIET = FAST.replace(heartbeat_interval=None)  # no heartbeats: only the read deadline bounds a wait


def connect_pair(lst: socket.socket, config: RobustConfig = FAST) -> tuple[RobustConnection, socket.socket]:
    host, port = lst.getsockname()
    conn = RobustConnection.connect(host, port, config)
    return conn, accept(lst)


def wait_readable(sock: socket.socket, timeout: float = 1.0) -> None:
    """Until the kernel has something for us (data, FIN or RST) — so a test does not race the wire."""
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, f"nothing arrived within {timeout}s"


# -- the happy paths, the way TCP actually behaves ---------------------------------------------------

def test_request_over_a_socketpair_gets_its_echo():
    a, b = socket.socketpair()
    stop = threading.Event()
    with RobustConnection(a, FAST) as conn, background(lambda: serve_echo(b, stop=stop)):
        try:
            assert conn.request(b"hello") == b"hello"
            assert conn.request(b"") == b""
            assert conn.ping() < 1.0
        finally:
            stop.set()
    b.close()


def test_partial_sends_with_a_tiny_send_buffer_still_deliver_every_byte():
    body = bytes(range(256)) * 4096  # 1 MiB
    with listening(rcvbuf=4096) as lst:
        conn, peer = connect_pair(lst)
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        stop = threading.Event()
        with conn, background(lambda: serve_echo(peer, stop=stop)):
            started = time.monotonic()
            try:
                assert conn.request(body) == body
            finally:
                stop.set()
            assert time.monotonic() - started < 10.0
            # The kernel took the frame in pieces, and nothing was lost between them.
            assert conn.stats.partial_sends > 0
            assert conn.stats.send_calls > 2
        peer.close()


def test_a_peer_that_dribbles_one_byte_at_a_time_yields_one_whole_message():
    a, b = socket.socketpair()
    body = b"0123456789" * 5
    stop = threading.Event()
    with RobustConnection(a, FAST) as conn, background(lambda: serve_echo(b, stop=stop, dribble=0.002)):
        started = time.monotonic()
        try:
            assert conn.request(body) == body
        finally:
            stop.set()
        assert time.monotonic() - started < 3.0
        frame_size = framing.HEADER_SIZE + 8 + len(body)
        assert conn.stats.recv_calls > frame_size // 4  # it really did arrive in dribbles
        assert conn.stats.bytes_received == frame_size
    b.close()


def test_half_close_exchange_reads_every_reply_until_eof():
    bodies = [b"one", b"two" * 100, b"three" * 10_000]

    def peer_side(sock: socket.socket) -> int:
        frames = read_frames(sock, count=10**6, timeout=3.0)  # until our FIN
        for f in frames:
            sock.sendall(framing.encode_echo(f.seq, f.body))
        sock.close()
        return len(frames)

    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn, background(lambda: peer_side(peer)) as result:
            started = time.monotonic()
            seqs = [conn.send_message(b) for b in bodies]
            conn.shutdown_write()
            frames = conn.read_until_eof()
            assert time.monotonic() - started < 2.0
        assert result.get("value") == 3, result
        assert [(f.type, f.seq, f.body) for f in frames] == [(FrameType.ECHO, s, b) for s, b in zip(seqs, bodies)]


# -- the ways it ends -----------------------------------------------------------------------------

def test_eof_inside_a_frame_is_incomplete_message_with_exact_counts():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            whole = framing.encode_echo(7, b"x" * 92)  # 5 + 8 + 92 = 105 bytes on the wire
            peer.sendall(whole[:45])
            peer.close()
            started = time.monotonic()
            with pytest.raises(IncompleteMessage) as info:
                conn.recv_frame()
            assert time.monotonic() - started < 0.5
            assert type(info.value) is IncompleteMessage
            assert (info.value.received, info.value.expected) == (45, 105)
            # Broken for good: the same error again, never a truncated frame.
            with pytest.raises(IncompleteMessage):
                conn.recv_frame()


def test_eof_inside_the_header_has_unknown_expected_length():
    a, b = socket.socketpair()
    with RobustConnection(a, FAST) as conn:
        b.sendall(framing.encode_echo(1, b"abc")[:3])
        b.close()
        started = time.monotonic()
        with pytest.raises(IncompleteMessage) as info:
            conn.recv_frame()
        assert time.monotonic() - started < 0.5
        assert (info.value.received, info.value.expected) == (3, None)


def test_clean_close_between_messages_is_peer_closed_after_the_last_whole_frame():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            peer.sendall(framing.encode_echo(1, b"last words"))
            peer.close()
            assert conn.recv_frame().body == b"last words"
            started = time.monotonic()
            with pytest.raises(PeerClosed) as info:
                conn.recv_frame()
            assert type(info.value) is PeerClosed
            assert time.monotonic() - started < 0.5


def test_peer_that_closes_instead_of_replying_is_peer_closed_fast():
    with listening() as lst:
        conn, peer = connect_pair(lst)

        def read_request_then_close() -> None:
            read_frames(peer, 1)  # consume the DATA so the close is a FIN, not an RST
            peer.close()

        with conn, background(read_request_then_close):
            started = time.monotonic()
            with pytest.raises(PeerClosed) as info:
                conn.request(b"anyone there?")
            assert type(info.value) is PeerClosed
            assert time.monotonic() - started < 0.5


def test_rst_while_waiting_is_peer_reset_within_half_a_second():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        timer = threading.Timer(0.2, abort, args=(peer,))
        with conn:
            started = time.monotonic()
            timer.start()
            try:
                with pytest.raises(PeerReset) as info:
                    conn.recv_frame()
            finally:
                timer.join(2.0)
            elapsed = time.monotonic() - started
        assert type(info.value) is PeerReset
        assert info.value.errno == errno.ECONNRESET
        assert 0.15 <= elapsed < 0.2 + 0.5


def test_write_after_reset_fails_on_the_next_send_and_stays_failed():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            abort(peer)
            wait_readable(conn.socket)  # the RST is here before we write
            started = time.monotonic()
            with pytest.raises(PeerReset) as info:
                conn.send_message(b"into the void")
            assert time.monotonic() - started < 0.5
            assert type(info.value) is PeerReset and info.value.errno == errno.ECONNRESET
            # Nothing is silently dropped later either: every further send fails the same way.
            with pytest.raises(PeerReset):
                conn.send_message(b"and again")


def test_write_after_peer_closed_is_broken_pipe_not_silent_loss():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            peer.close()
            wait_readable(conn.socket)  # the peer's FIN has arrived
            conn.send_message(b"first")  # TCP accepts this one: the kernel cannot know yet
            wait_readable(conn.socket)  # ... and the peer's kernel answers it with RST
            deadline = time.monotonic() + 1.0
            with pytest.raises(BrokenPipe) as info:
                while time.monotonic() < deadline:
                    conn.send_message(b"second")
                    time.sleep(0.01)  # the RST is in flight on loopback: a bounded, short wait
            assert info.value.errno == errno.EPIPE


def test_request_to_a_peer_that_closed_never_returns_silently():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            peer.close()
            wait_readable(conn.socket)
            started = time.monotonic()
            with pytest.raises(PeerClosed):
                conn.request(b"lost?")
            assert time.monotonic() - started < 0.5


def test_a_peer_that_stops_reading_is_send_stalled_within_the_write_timeout():
    config = FAST.replace(timeouts=FAST.timeouts.replace(write=0.5))
    body = b"z" * (8 * 1024 * 1024)
    with listening(rcvbuf=4096) as lst:
        conn, peer = connect_pair(lst, config)
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with conn:
            started = time.monotonic()
            with pytest.raises(SendStalled) as info:
                conn.send_message(body)
            elapsed = time.monotonic() - started
            assert type(info.value) is SendStalled
            assert 0.5 <= elapsed < 0.5 + 1.0
            assert 0 < info.value.sent < info.value.total == framing.HEADER_SIZE + 8 + len(body)
            # Half a frame is on the wire: the stream can never be used again.
            with pytest.raises(SendStalled):
                conn.send_message(b"more")
        peer.close()


def test_a_frozen_peer_is_found_by_heartbeats_within_dead_after():
    with listening() as lst:
        conn, peer = connect_pair(lst, FAST)  # heartbeat 0.2 s, dead_after 0.8 s
        with conn:
            started = time.monotonic()
            with pytest.raises(PeerUnresponsive) as info:
                conn.request(b"hello?")
            elapsed = time.monotonic() - started
        assert info.value.detected_by == "heartbeat"
        assert 0.8 <= elapsed < 0.8 + 1.0
        frames = drain(peer)
        peer.close()
        assert frames[0].type is FrameType.DATA
        assert sum(f.type is FrameType.PING for f in frames) >= 2  # it did ask before giving up


def test_heartbeats_keep_a_slow_but_alive_peer():
    with listening() as lst:
        conn, peer = connect_pair(lst, FAST)
        stop = threading.Event()
        with conn, background(lambda: serve_echo(peer, stop=stop, echo_delay=1.5)):
            started = time.monotonic()
            try:
                assert conn.request(b"take your time") == b"take your time"
            finally:
                stop.set()
            elapsed = time.monotonic() - started
        peer.close()
        assert 1.5 <= elapsed < 3.0  # well past dead_after (0.8 s): PONGs proved it alive
        assert conn.stats.pings_sent >= 4 and conn.stats.pongs_received >= 4


def test_without_heartbeats_the_read_deadline_reports_and_the_stream_stays_usable():
    config = QUIET.replace(timeouts=QUIET.timeouts.replace(read=0.5))
    with listening() as lst:
        conn, peer = connect_pair(lst, config)
        with conn:
            started = time.monotonic()
            seq = conn.send_message(b"late")
            with pytest.raises(PeerUnresponsive) as info:
                conn.await_echo(seq, b"late")
            elapsed = time.monotonic() - started
            assert info.value.detected_by == "read-deadline"
            assert 0.5 <= elapsed < 0.5 + 1.0
            frames = drain(peer)
            assert [f.type for f in frames] == [FrameType.DATA]  # no PINGs when heartbeats are off
            peer.sendall(framing.encode_echo(seq, b"late"))
            assert conn.await_echo(seq, b"late") == b"late"
        peer.close()


def test_nobody_listening_is_connect_refused_at_once():
    port = unused_port()
    started = time.monotonic()
    with pytest.raises(ConnectRefused) as info:
        RobustConnection.connect("127.0.0.1", port, FAST)
    assert time.monotonic() - started < 0.5
    assert type(info.value) is ConnectRefused and info.value.errno == errno.ECONNREFUSED


def test_an_oversized_header_is_rejected_before_the_payload_arrives():
    a, b = socket.socketpair()
    with RobustConnection(a, FAST.replace(max_payload=1024)) as conn:
        b.sendall(framing.HEADER.pack(10**6, FrameType.ECHO))
        started = time.monotonic()
        with pytest.raises(FrameTooLarge):
            conn.recv_frame()
        assert time.monotonic() - started < 0.5
    b.close()


def test_frames_that_arrive_while_pinging_are_kept_for_the_caller():
    a, b = socket.socketpair()
    with RobustConnection(a, FAST) as conn:
        b.sendall(framing.encode_echo(41, b"early"))

        def answer_ping() -> None:
            frames = read_frames(b, 1)
            b.sendall(framing.encode_pong(frames[0].seq))

        with background(answer_ping):
            assert conn.ping() < 1.0
        frame = conn.recv_frame(timeout=0.5)
        assert (frame.type, frame.seq, frame.body) == (FrameType.ECHO, 41, b"early")
    b.close()


def test_abort_sends_rst_to_the_peer():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        conn.abort()
        assert conn.closed
        with pytest.raises(ConnectionResetError):
            peer.recv(10)
        peer.close()


def test_a_quiet_live_peer_trips_the_idle_deadline_not_the_heartbeat() -> None:
    from lab.testing import running_server

    # The lab server answers PINGs but never speaks first: alive, and quiet.
    config = FAST.replace(timeouts=FAST.timeouts.replace(idle=0.8), heartbeat_interval=0.1, dead_after=0.3)
    with running_server("threaded") as srv, RobustConnection.connect("127.0.0.1", srv.port, config) as conn:
        started = time.monotonic()
        with pytest.raises(PeerUnresponsive) as info:
            conn.wait_message()
        took = time.monotonic() - started
    assert info.value.detected_by == "idle-deadline"
    assert 0.8 <= took < 0.8 + 0.5
    assert conn.stats.pings_sent >= 5  # heartbeats ran, and every one was answered


# -- giving up releases the socket ------------------------------------------------------------------

def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    """Every byte the peer sends until its FIN; fails if the FIN does not come within ``timeout``."""
    sock.settimeout(timeout)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def test_a_peer_declared_dead_by_heartbeats_gets_our_fin_at_once():
    with listening() as lst:
        conn, peer = connect_pair(lst, FAST)  # heartbeat 0.2 s, dead_after 0.8 s
        with conn:
            with pytest.raises(PeerUnresponsive) as info:
                conn.request(b"hello?")
            gave_up = time.monotonic()
            assert info.value.detected_by == "heartbeat"
            # Released there and then, not when the owner calls close() (which is still safe).
            assert conn.socket.fileno() == -1 and not conn.closed
            sent = read_until_eof(peer, timeout=0.5)   # the DATA and the PINGs, then our FIN
            assert time.monotonic() - gave_up < 0.5
            assert sent.startswith(framing.encode_data(1, b"hello?"))
            # Every later call raises the very same error, never "closed" or EBADF.
            with pytest.raises(PeerUnresponsive) as again:
                conn.request(b"still there?")
            assert again.value is info.value
            conn.abort()   # after giving up, abort and close only release what is left
        conn.close()
        peer.close()


def test_a_stalled_send_releases_the_socket_and_the_peer_reads_to_our_fin():
    config = FAST.replace(timeouts=FAST.timeouts.replace(write=0.5))
    with listening(rcvbuf=4096) as lst:
        conn, peer = connect_pair(lst, config)
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with conn:
            with pytest.raises(SendStalled) as info:
                conn.send_message(b"z" * (8 * 1024 * 1024))
            assert conn.socket.fileno() == -1
            # What the kernel had taken still arrives, then the FIN: nothing hangs open.
            received = read_until_eof(peer, timeout=3.0)
            assert 0 < len(received) <= info.value.sent + framing.HEADER_SIZE + 8
            with pytest.raises(SendStalled):
                conn.send_message(b"more")
        peer.close()


def test_a_reset_releases_the_socket():
    with listening() as lst:
        conn, peer = connect_pair(lst)
        with conn:
            abort(peer)
            wait_readable(conn.socket)
            with pytest.raises(PeerReset):
                conn.recv_frame()
            assert conn.socket.fileno() == -1


def test_a_read_deadline_keeps_the_socket_for_another_wait():
    config = QUIET.replace(timeouts=QUIET.timeouts.replace(read=0.3))
    with listening() as lst:
        conn, peer = connect_pair(lst, config)
        with conn:
            with pytest.raises(PeerUnresponsive) as info:
                conn.request(b"slow")
            assert info.value.detected_by == "read-deadline"
            assert conn.socket.fileno() != -1   # the peer may be alive: it is not given up on
        peer.close()
