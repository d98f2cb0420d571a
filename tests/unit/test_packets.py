"""IPv4/TCP parsing, checksums and payload corruption, on packets the kernel itself checksummed.

The three fixtures are real: the handshake's first packet, its ACK and a 5-byte data segment
("hello"), as NFQUEUE handed them to the handler in a client-router-server netns test (the
kernel resolves CHECKSUM_PARTIAL before it copies a packet to the queue, so the checksums in
them are the kernel's own computation, not ours).
"""

from __future__ import annotations

import pytest

from lab.inlab.agent import packets as pk
from lab.inlab.agent.packets import PacketError

SYN = bytes.fromhex("4500003c1ba840003f0607670ad501020ad502029fce1b58d18ace8f00000000a002faf0da500000"
                    "020405b40402080aa47b5a51000000000103030a")
ACK = bytes.fromhex("450000341ba940003f06076e0ad501020ad502029fce1b58d18ace907c49cccf8010003f21490000"
                    "0101080aa47b5a52673a3224")
DATA = bytes.fromhex("450000391baa40003f0607680ad501020ad502029fce1b58d18ace907c49cccf8018003fdd690000"
                     "0101080aa47b5a52673a322468656c6c6f")


def test_parse_the_data_segment_whole() -> None:
    assert pk.parse_tcp(DATA) == pk.TcpPacket(
        src="10.213.1.2", dst="10.213.2.2", ttl=63, ip_id=0x1BAA, ip_header_length=20, total_length=57,
        ip_checksum=0x0768, src_port=40910, dst_port=7000, seq=0xD18ACE90, ack=0x7C49CCCF, tcp_header_length=32,
        flags=pk.PSH | pk.ACK, window=63, tcp_checksum=0xDD69, payload_offset=52, payload_length=5)
    assert pk.parse_tcp(DATA).payload(DATA) == b"hello"


def test_flags_and_control() -> None:
    syn, ack, data = (pk.parse_tcp(p) for p in (SYN, ACK, DATA))
    assert (syn.flag_text, ack.flag_text, data.flag_text) == ("S", ".", "P.")
    assert (syn.is_control, ack.is_control, data.is_control) == (True, False, False)
    assert (syn.tcp_header_length, syn.payload_length) == (40, 0)


@pytest.mark.parametrize("packet", [SYN, ACK, DATA], ids=["syn", "ack", "data"])
def test_our_checksums_equal_the_kernels(packet: bytes) -> None:
    info = pk.parse_tcp(packet)
    assert pk.ipv4_checksum(packet) == info.ip_checksum
    assert pk.tcp_checksum(packet) == info.tcp_checksum
    assert pk.checksums_ok(packet) == (True, True)
    assert pk.with_checksums(packet) == packet


def test_trailing_bytes_past_the_total_length_are_neither_payload_nor_checksummed() -> None:
    padded = DATA + b"\0\0\0\0\0"
    info = pk.parse_tcp(padded)
    assert (info.total_length, info.payload_length, info.payload(padded)) == (57, 5, b"hello")
    assert pk.checksums_ok(padded) == (True, True)
    assert pk.corrupt_payload(padded, 0, 1, fix_checksum=True)[-5:] == b"\0\0\0\0\0"


def test_build_tcp_reproduces_the_real_data_segment() -> None:
    options = bytes.fromhex("0101080aa47b5a52673a3224")
    built = pk.build_tcp("10.213.1.2", "10.213.2.2", 40910, 7000, seq=0xD18ACE90, ack=0x7C49CCCF,
                         window=63, payload=b"hello", ttl=63, ip_id=0x1BAA, options=options)
    assert built == DATA


def test_bad_checksum_corruption_flips_one_bit_and_leaves_the_checksum() -> None:
    bad = pk.corrupt_payload(DATA, 1, 0x20, fix_checksum=False)
    assert pk.parse_tcp(bad).payload(bad) == b"hEllo"
    assert [i for i in range(len(DATA)) if bad[i] != DATA[i]] == [53]
    assert pk.checksums_ok(bad) == (True, False)
    # 'e' (0x65) is the low byte of its 16-bit word: the sum drops by 0x20, so its complement rises by 0x20.
    assert pk.tcp_checksum(bad) == 0xDD89


def test_recomputed_corruption_has_a_right_checksum() -> None:
    fixed = pk.corrupt_payload(DATA, 1, 0x20, fix_checksum=True)
    assert pk.parse_tcp(fixed).payload(fixed) == b"hEllo"
    assert pk.parse_tcp(fixed).tcp_checksum == 0xDD89
    assert pk.checksums_ok(fixed) == (True, True)
    assert [i for i in range(len(DATA)) if fixed[i] != DATA[i]] == [37, 53]   # checksum low byte, the byte


def test_corrupt_refuses_an_offset_outside_the_payload_and_a_null_mask() -> None:
    with pytest.raises(ValueError, match="offset 5 is outside the segment's 5-byte payload"):
        pk.corrupt_payload(DATA, 5, 1, fix_checksum=False)
    with pytest.raises(ValueError, match="offset 0 is outside the segment's 0-byte payload"):
        pk.corrupt_payload(ACK, 0, 1, fix_checksum=False)
    with pytest.raises(ValueError, match="mask 0 must flip at least one bit"):
        pk.corrupt_payload(DATA, 0, 0, fix_checksum=False)


def test_internet_checksum_of_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert pk.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert pk.internet_checksum(b"\x01") == 0xFEFF   # an odd byte is padded with a zero


@pytest.mark.parametrize(("packet", "message"), [
    (DATA[:19], "19 bytes are too few for an IPv4 header"),
    (b"\x60" + DATA[1:], "IP version 6, only IPv4"),
    (b"\x44" + DATA[1:], "header length 16 is under the minimum 20"),
    (DATA[:56], "total length 57 does not fit"),
    (DATA[:9] + b"\x11" + DATA[10:], "IP protocol 17, not TCP"),
    (DATA[:6] + b"\x00\x10" + DATA[8:], "a fragment at offset 128"),
    (DATA[:2] + b"\x00\x27" + DATA[4:], "19 bytes after the IP header are too few"),
    (DATA[:32] + b"\xf0" + DATA[33:], "TCP header length 60 does not fit"),
])
def test_parse_refuses_what_is_not_ipv4_tcp(packet: bytes, message: str) -> None:
    with pytest.raises(PacketError, match=message):
        pk.parse_tcp(packet)


def test_packet_error_is_a_value_error() -> None:
    assert issubclass(PacketError, ValueError)
