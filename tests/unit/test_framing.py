"""The sans-IO framing: every frame type whole, byte by byte and with trailing data; EOF inside a
frame; oversize and unknown headers; the sticky error; and property tests over arbitrary splits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.sockets.errors import BadFrame, FrameTooLarge, IncompleteMessage, ProtocolError
from lab.sockets.framing import (CLOSED, HEADER, HEADER_SIZE, NEED_DATA, Decoder, Frame, FrameType, encode, encode_data,
                         encode_echo, encode_hello_reply, encode_hello_request, encode_ping, encode_pong)

SID = bytes(range(16))

FRAMES = {
    "hello-request": (encode_hello_request(SID), Frame(FrameType.HELLO, SID)),
    "hello-reply": (encode_hello_reply(7), Frame(FrameType.HELLO, (7).to_bytes(8, "big"))),
    "data": (encode_data(3, b"payload"), Frame(FrameType.DATA, (3).to_bytes(8, "big") + b"payload")),
    "data-empty-body": (encode_data(0, b""), Frame(FrameType.DATA, bytes(8))),
    "echo": (encode_echo(2**64 - 1, b"\x00" * 300), Frame(FrameType.ECHO, b"\xff" * 8 + b"\x00" * 300)),
    "ping": (encode_ping(42), Frame(FrameType.PING, (42).to_bytes(8, "big"))),
    "pong": (encode_pong(42), Frame(FrameType.PONG, (42).to_bytes(8, "big"))),
}


def drain(dec: Decoder) -> list[object]:
    """Every event up to and including the first NEED_DATA or CLOSED."""
    out: list[object] = []
    while True:
        event = dec.next_event()
        out.append(event)
        if event is NEED_DATA or event is CLOSED:
            return out


@pytest.mark.parametrize("name", FRAMES)
def test_frame_fed_whole(name: str) -> None:
    wire, frame = FRAMES[name]
    dec = Decoder()
    dec.receive_data(wire)
    assert drain(dec) == [frame, NEED_DATA]
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED
    assert dec.frames_decoded == 1 and dec.bytes_consumed == len(wire)


@pytest.mark.parametrize("name", FRAMES)
def test_frame_fed_one_byte_at_a_time(name: str) -> None:
    wire, frame = FRAMES[name]
    dec = Decoder()
    for i in range(len(wire) - 1):
        dec.receive_data(wire[i:i + 1])
        assert dec.next_event() is NEED_DATA
        assert dec.bytes_needed() == (len(wire) - i - 1 if i + 1 >= HEADER_SIZE else HEADER_SIZE - i - 1)
    dec.receive_data(wire[-1:])
    assert drain(dec) == [frame, NEED_DATA]
    assert dec.at_boundary


@pytest.mark.parametrize("name", FRAMES)
def test_frame_with_trailing_data_keeps_the_rest(name: str) -> None:
    wire, frame = FRAMES[name]
    trailing = encode_ping(9)[:3]
    dec = Decoder()
    dec.receive_data(wire + trailing)
    assert drain(dec) == [frame, NEED_DATA]
    assert dec.buffered == 3 and not dec.at_boundary
    dec.receive_data(encode_ping(9)[3:])
    assert drain(dec) == [Frame(FrameType.PING, (9).to_bytes(8, "big")), NEED_DATA]


def test_the_frame_properties() -> None:
    frame = Frame(FrameType.DATA, (5).to_bytes(8, "big") + b"abc")
    assert (frame.seq, frame.body, frame.wire_size) == (5, b"abc", HEADER_SIZE + 11)


def test_back_to_back_frames_in_one_chunk() -> None:
    wires = [w for w, _ in FRAMES.values()]
    dec = Decoder()
    dec.receive_data(b"".join(wires))
    assert drain(dec) == [f for _, f in FRAMES.values()] + [NEED_DATA]


@pytest.mark.parametrize("cut", range(1, HEADER_SIZE))
def test_eof_mid_header_says_how_much_arrived(cut: int) -> None:
    dec = Decoder()
    dec.receive_data(encode_data(1, b"xyz")[:cut])
    assert dec.next_event() is NEED_DATA
    dec.receive_data(b"")
    with pytest.raises(IncompleteMessage) as info:
        dec.next_event()
    assert (info.value.received, info.value.expected) == (cut, None)
    assert info.value.phase == "read"


@pytest.mark.parametrize("cut", [HEADER_SIZE, HEADER_SIZE + 1, HEADER_SIZE + 10])
def test_eof_mid_payload_says_received_of_expected(cut: int) -> None:
    wire = encode_data(1, b"x" * 100)
    dec = Decoder()
    dec.receive_data(wire[:cut])
    assert dec.next_event() is NEED_DATA
    dec.receive_data(b"")
    with pytest.raises(IncompleteMessage) as info:
        dec.next_event()
    assert (info.value.received, info.value.expected) == (cut, len(wire))


def test_eof_on_a_boundary_is_closed_and_stays_closed() -> None:
    dec = Decoder()
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED
    assert dec.next_event() is CLOSED
    dec.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(RuntimeError, match="after end of stream"):
        dec.receive_data(b"more")


def test_frame_too_large_is_raised_from_the_header_alone() -> None:
    dec = Decoder(max_payload=1024)
    dec.receive_data(HEADER.pack(1025, FrameType.DATA))
    with pytest.raises(FrameTooLarge, match="1025"):
        dec.next_event()
    # Only the 5 header bytes were ever held: nothing was allocated for the announced payload.
    assert dec.buffered == HEADER_SIZE


def test_a_4gib_header_fails_at_once_with_the_default_maximum() -> None:
    dec = Decoder()
    dec.receive_data(HEADER.pack(2**32 - 1, FrameType.ECHO))
    with pytest.raises(FrameTooLarge):
        dec.next_event()
    assert dec.buffered == HEADER_SIZE


def test_exactly_max_payload_is_accepted() -> None:
    dec = Decoder(max_payload=64)
    dec.receive_data(encode_data(1, b"b" * 56, max_payload=64))
    assert drain(dec)[0] == Frame(FrameType.DATA, (1).to_bytes(8, "big") + b"b" * 56)


@pytest.mark.parametrize("ftype", [0, 6, 99, 255])
def test_unknown_type_is_bad_frame(ftype: int) -> None:
    dec = Decoder()
    dec.receive_data(HEADER.pack(0, ftype))
    with pytest.raises(BadFrame, match=f"unknown frame type {ftype}"):
        dec.next_event()


@pytest.mark.parametrize("ftype", [FrameType.DATA, FrameType.ECHO, FrameType.PING, FrameType.PONG])
def test_payload_shorter_than_a_seq_is_bad_frame(ftype: FrameType) -> None:
    dec = Decoder()
    dec.receive_data(HEADER.pack(7, ftype) + b"1234567")
    with pytest.raises(BadFrame, match="shorter than"):
        dec.next_event()


def test_the_error_is_sticky() -> None:
    dec = Decoder()
    dec.receive_data(HEADER.pack(0, 200))
    with pytest.raises(BadFrame) as first:
        dec.next_event()
    dec.receive_data(encode_ping(1))  # valid bytes afterwards change nothing
    for _ in range(3):
        with pytest.raises(BadFrame) as again:
            dec.next_event()
        assert again.value is first.value


def test_incomplete_message_is_sticky_too() -> None:
    dec = Decoder()
    dec.receive_data(b"\x00\x00")
    dec.receive_data(b"")
    with pytest.raises(IncompleteMessage) as first:
        dec.next_event()
    with pytest.raises(IncompleteMessage) as again:
        dec.next_event()
    assert again.value is first.value


def test_iterating_yields_available_frames_and_stops() -> None:
    dec = Decoder()
    dec.receive_data(encode_ping(1) + encode_ping(2) + encode_ping(3)[:2])
    assert [f.seq for f in dec] == [1, 2]
    assert dec.buffered == 2


def test_encode_refuses_what_a_decoder_would_reject() -> None:
    with pytest.raises(ValueError, match="unknown frame type"):
        encode(77, b"")
    with pytest.raises(ValueError, match="exceeds max_payload"):
        encode_data(1, b"x" * 100, max_payload=50)
    with pytest.raises(ValueError, match="at least 8 bytes"):
        encode(FrameType.PING, b"123")
    with pytest.raises(ValueError, match="16 bytes"):
        encode_hello_request(b"short")


@pytest.mark.parametrize("bad", [0, -1, 2**32, True, 1.5])
def test_decoder_rejects_a_bad_maximum(bad: object) -> None:
    with pytest.raises(ValueError, match="max_payload"):
        Decoder(max_payload=bad)  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------

frames_st = st.lists(
    st.one_of(
        st.builds(encode_data, st.integers(0, 2**64 - 1), st.binary(max_size=300)),
        st.builds(encode_echo, st.integers(0, 2**64 - 1), st.binary(max_size=300)),
        st.builds(encode_ping, st.integers(0, 2**64 - 1)),
        st.builds(encode_pong, st.integers(0, 2**64 - 1)),
        st.builds(encode_hello_request, st.binary(min_size=16, max_size=16)),
        st.builds(encode_hello_reply, st.integers(0, 2**64 - 1)),
    ),
    max_size=12,
)


def _expected(wires: list[bytes]) -> list[Frame]:
    out = []
    for w in wires:
        length, ftype = HEADER.unpack_from(w)
        out.append(Frame(FrameType(ftype), w[HEADER_SIZE:HEADER_SIZE + length]))
    return out


@settings(max_examples=300, deadline=None)
@given(wires=frames_st, data=st.data())
def test_any_split_of_any_frames_decodes_to_the_same_frames(wires: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(wires)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    dec = Decoder()
    got: list[object] = []
    for piece in pieces:
        if not piece:
            continue  # b"" would mean EOF, not "an empty recv"
        dec.receive_data(piece)
        got.extend(e for e in drain(dec) if e is not NEED_DATA)
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED
    assert got == _expected(wires)


MAX = 64


@settings(max_examples=500, deadline=None)
@given(chunks=st.lists(st.binary(max_size=2 * MAX), max_size=20), eof=st.booleans())
def test_random_bytes_never_hang_crash_or_overbuffer(chunks: list[bytes], eof: bool) -> None:
    dec = Decoder(max_payload=MAX)
    try:
        for chunk in filter(None, chunks):  # b"" would mean EOF
            dec.receive_data(chunk)
            events = drain(dec)  # returns: the decoder never loops without consuming or stopping
            assert all(isinstance(e, Frame) for e in events[:-1])
            assert events[-1] is NEED_DATA
            # Whatever is held back is less than one maximal frame.
            assert dec.buffered < HEADER_SIZE + MAX
        if eof:
            dec.receive_data(b"")
            assert drain(dec)[-1] is CLOSED
    except (ProtocolError, IncompleteMessage) as exc:
        assert dec.buffered <= HEADER_SIZE + MAX + 2 * MAX
        with pytest.raises(type(exc)):
            dec.next_event()
