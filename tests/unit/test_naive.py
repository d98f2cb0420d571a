"""The HOWTO-style sockets against scripted kernels: partial sends, 0-byte sends and recvs,
fragmented replies, and the two classic mistakes losing or truncating data. No network."""

from __future__ import annotations

import errno
import socket
import threading

import pytest

from lab.sockets.framing import HEADER_SIZE, Decoder, encode_echo
from lab.sockets.naive import (BROKEN, REGISTRY, IgnoreSendReturnSocket, LengthPrefixedSocket, MySocket, SingleRecvSocket,
                               TwoWritesSocket, WallClockDeadlineSocket,
                       fixed_message, make_message)
from lab.testing import Fail, Recv, ScriptedSocket, ScriptError, Send, memory_stream_pair

MSG = make_message(1, b"hello world")          # 5 + 8 + 11 = 24 bytes
REPLY = encode_echo(1, b"hello world")


def test_registry_names_every_variant() -> None:
    assert REGISTRY == {"naive-fixed": MySocket, "naive": LengthPrefixedSocket,
                        "naive-single-recv": SingleRecvSocket, "naive-ignore-send": IgnoreSendReturnSocket,
                        "naive-two-writes": TwoWritesSocket, "naive-walltime": WallClockDeadlineSocket}
    for cls in REGISTRY.values():
        assert cls.__doc__ and ("Mistake" in cls.__doc__ or "HOWTO" in cls.__doc__ or "brittle" in cls.__doc__)


def test_message_helpers() -> None:
    assert MSG[:HEADER_SIZE] == b"\x00\x00\x00\x13\x02"
    assert len(fixed_message(9, 100)) == 100
    with pytest.raises(ValueError, match="at least 13"):
        fixed_message(1, 12)


# -- the sound loops ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda s: MySocket(len(MSG), s), LengthPrefixedSocket])
def test_send_loops_over_partial_sends(make) -> None:
    sock = ScriptedSocket([Send(1), Send(5), Send(3), Send(100)])
    make(sock).mysend(MSG)
    assert bytes(sock.sent) == MSG and sock.done
    assert [n for op, n in sock.calls if op == "send"] == [24, 23, 18, 15]


@pytest.mark.parametrize("make", [lambda s: MySocket(len(MSG), s), LengthPrefixedSocket])
def test_send_returning_zero_is_connection_broken(make) -> None:
    sock = ScriptedSocket([Send(10), Send(0)])
    with pytest.raises(RuntimeError, match=f"^{BROKEN}$"):
        make(sock).mysend(MSG)
    assert bytes(sock.sent) == MSG[:10]


@pytest.mark.parametrize("make", [lambda s: MySocket(len(REPLY), s), LengthPrefixedSocket])
def test_receive_loops_over_a_fragmented_reply(make) -> None:
    pieces = [REPLY[:2], REPLY[2:5], REPLY[5:6], REPLY[6:20], REPLY[20:]]
    sock = ScriptedSocket([Recv(p) for p in pieces])
    assert make(sock).myreceive() == REPLY
    assert sock.done


@pytest.mark.parametrize("cut", [0, 3, HEADER_SIZE, HEADER_SIZE + 4])
@pytest.mark.parametrize("make", [lambda s: MySocket(len(REPLY), s), LengthPrefixedSocket])
def test_zero_byte_recv_mid_message_is_connection_broken(make, cut: int) -> None:
    sock = ScriptedSocket([Recv(REPLY[:cut]), Recv(b"")] if cut else [Recv(b"")])
    with pytest.raises(RuntimeError, match=f"^{BROKEN}$"):
        make(sock).myreceive()
    assert sock.done


def test_length_prefixed_reads_header_then_payload_in_two_loops() -> None:
    sock = ScriptedSocket([Recv(REPLY + encode_echo(2, b"next"))])
    s = LengthPrefixedSocket(sock)
    assert s.myreceive() == REPLY
    # It asked for the header alone first, then exactly the payload: the next message stays unread.
    assert [n for op, n in sock.calls if op == "recv"] == [HEADER_SIZE, len(REPLY) - HEADER_SIZE]
    assert s.myreceive() == encode_echo(2, b"next")


def test_fixed_length_refuses_another_length() -> None:
    with pytest.raises(ValueError, match="exactly 30 bytes"):
        MySocket(30, ScriptedSocket([])).mysend(MSG)


def test_reset_surfaces_as_the_raw_oserror() -> None:
    sock = ScriptedSocket([Recv(REPLY[:3]), Fail("recv", ConnectionResetError(errno.ECONNRESET, "reset"))])
    with pytest.raises(ConnectionResetError):
        LengthPrefixedSocket(sock).myreceive()


def test_connect_and_close_pass_through() -> None:
    sock = ScriptedSocket([Fail("connect", ConnectionRefusedError(errno.ECONNREFUSED, "refused"))])
    s = LengthPrefixedSocket(sock)
    with pytest.raises(ConnectionRefusedError):
        s.connect("127.0.0.1", 9)
    s.close()
    assert sock.calls[0] == ("connect", ("127.0.0.1", 9)) and sock.closed


# -- the mistakes -----------------------------------------------------------------------------------

def test_single_recv_returns_a_truncated_message_under_fragmentation() -> None:
    sock = ScriptedSocket([Recv(REPLY[:7]), Recv(REPLY[7:])])
    s = SingleRecvSocket(sock)
    first = s.myreceive()
    assert first == REPLY[:7] and len(first) < len(REPLY)
    # The tail is then taken for the next message.
    assert s.myreceive() == REPLY[7:]


def test_single_recv_glues_two_replies_into_one() -> None:
    two = REPLY + encode_echo(2, b"x")
    assert SingleRecvSocket(ScriptedSocket([Recv(two)])).myreceive() == two


def test_the_sound_socket_survives_the_same_fragmentation() -> None:
    sock = ScriptedSocket([Recv(REPLY[:7]), Recv(REPLY[7:])])
    assert LengthPrefixedSocket(sock).myreceive() == REPLY


def test_ignore_send_return_loses_the_unsent_tail() -> None:
    sock = ScriptedSocket([Send(10)])
    IgnoreSendReturnSocket(sock).mysend(MSG)  # returns as if all was sent
    assert bytes(sock.sent) == MSG[:10]
    assert [op for op, _ in sock.calls] == ["send"]  # never retried
    dec = Decoder()
    dec.receive_data(bytes(sock.sent))
    assert dec.bytes_needed() == len(MSG) - 10  # the peer waits for 14 bytes that will never come


def test_ignore_send_return_ignores_a_zero_send_too() -> None:
    sock = ScriptedSocket([Send(0)])
    IgnoreSendReturnSocket(sock).mysend(MSG)  # no RuntimeError: the broken connection goes unnoticed
    assert sock.sent == b""


def test_scripted_socket_refuses_unexpected_calls() -> None:
    with pytest.raises(ScriptError):
        LengthPrefixedSocket(ScriptedSocket([Send(5)])).myreceive()
    with pytest.raises(ScriptError, match="ran out"):
        LengthPrefixedSocket(ScriptedSocket([])).mysend(b"x")


# -- the same code on the in-memory stream (real blocking, still no network) ---------------------

def test_naive_pair_over_memory_streams_with_tiny_sends_and_recvs() -> None:
    a, b = memory_stream_pair(capacity=8)
    a.max_send, b.max_recv = 3, 2
    client, server = LengthPrefixedSocket(a), LengthPrefixedSocket(b)
    big = make_message(5, bytes(range(256)) * 4)
    t = threading.Thread(target=client.mysend, args=(big,), daemon=True)
    t.start()
    assert server.myreceive() == big
    t.join(5)
    assert not t.is_alive()
    assert a.send_calls >= len(big) // 3


def test_ignore_send_over_a_full_memory_stream_loses_bytes() -> None:
    a, b = memory_stream_pair(capacity=10)
    IgnoreSendReturnSocket(a).mysend(MSG)
    assert a.sent_total == 10 and b.recv(100) == MSG[:10]


def test_memory_stream_eof_and_reset() -> None:
    a, b = memory_stream_pair()
    a.sendall(REPLY[:9])
    a.shutdown(socket.SHUT_RDWR)
    with pytest.raises(RuntimeError, match=BROKEN):
        LengthPrefixedSocket(b).myreceive()
    c, d = memory_stream_pair()
    c.reset()
    with pytest.raises(ConnectionResetError):
        d.recv(1)
    with pytest.raises(ConnectionResetError):
        d.send(b"x")


def test_memory_stream_recv_timeout_and_broken_pipe() -> None:
    a, b = memory_stream_pair()
    b.settimeout(0.05)
    with pytest.raises(TimeoutError):
        b.recv(1)
    b.close()
    with pytest.raises(BrokenPipeError):
        a.send(b"x")


# -- naive-two-writes: header and payload in two send() calls --------------------------------------

def test_two_writes_sends_the_header_then_the_payload_in_exactly_two_calls() -> None:
    sock = ScriptedSocket([Send(100), Send(100), Send(100), Send(100)])
    conn = TwoWritesSocket(sock)
    conn.mysend(MSG)
    conn.mysend(make_message(2, b"xy"))
    assert [n for op, n in sock.calls if op == "send"] == [HEADER_SIZE, len(MSG) - HEADER_SIZE,
                                                           HEADER_SIZE, 8 + 2]
    assert bytes(sock.sent) == MSG + make_message(2, b"xy") and sock.done


def test_two_writes_still_loops_over_partial_sends_within_each_write() -> None:
    # Not a data-loss bug: each of its two writes is the sound loop, and the header never merges with the payload.
    sock = ScriptedSocket([Send(3), Send(100), Send(4), Send(100)])
    TwoWritesSocket(sock).mysend(MSG)
    assert [n for op, n in sock.calls if op == "send"] == [5, 2, 19, 15]
    assert bytes(sock.sent) == MSG and sock.done


def test_two_writes_send_returning_zero_is_connection_broken() -> None:
    sock = ScriptedSocket([Send(5), Send(0)])
    with pytest.raises(RuntimeError, match=f"^{BROKEN}$"):
        TwoWritesSocket(sock).mysend(MSG)
    assert bytes(sock.sent) == MSG[:HEADER_SIZE]


def test_two_writes_reads_like_the_sound_length_prefixed_socket() -> None:
    sock = ScriptedSocket([Recv(REPLY[:3]), Recv(REPLY[3:])])
    assert TwoWritesSocket(sock).myreceive() == REPLY and sock.done


def test_wall_clock_socket_needs_a_real_socket_and_says_its_defaults() -> None:
    assert (WallClockDeadlineSocket.deadline_s, WallClockDeadlineSocket.SLICE_S) == (2.0, 0.1)
    assert WallClockDeadlineSocket.on_deadline is None
    assert issubclass(WallClockDeadlineSocket, LengthPrefixedSocket) and issubclass(TwoWritesSocket,
                                                                                    LengthPrefixedSocket)
