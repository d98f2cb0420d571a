"""The netlink/nfnetlink codec on bytes: messages, nfgenmsg, attributes, NLMSG_ERROR and its OSError."""

from __future__ import annotations

import errno
import struct

import pytest

from lab.inlab.agent import netlink as nl
from lab.inlab.agent.netlink import Attr, Message, NetlinkDecodeError

# An NFQUEUE bind request for queue 5 as libnetfilter_queue builds it, written out by hand:
# nlmsghdr (len 28, type 0x0302, flags REQUEST|ACK, seq 7, pid 0), nfgenmsg (AF_UNSPEC, v0, res_id 5 BE),
# NFQA_CFG_CMD (len 8, type 1): command 1 (BIND), pad, pf 0.
BIND_5 = (struct.pack("=IHHII", 28, 0x0302, 0x05, 7, 0) + bytes([0, 0, 0, 5])
          + struct.pack("=HH", 8, 1) + bytes([1, 0, 0, 0]))


def test_encode_message_matches_the_hand_built_bind_request() -> None:
    payload = nl.encode_nfgen(0, 5) + nl.encode_attr(1, bytes([1, 0, 0, 0]))
    assert nl.encode_message(0x0302, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7, payload) == BIND_5


def test_decode_one_message_whole() -> None:
    (msg,) = nl.decode_messages(BIND_5)
    assert msg == Message(0x0302, 0x05, 7, 0, BIND_5[16:])
    assert (msg.subsystem, msg.subtype) == (3, 2)
    family, rest = nl.decode_nfgen(msg.payload)
    assert family == nl.NfGen(0, 0, 5)
    assert nl.decode_attrs(rest) == [Attr(1, bytes([1, 0, 0, 0]))]


def test_message_padding_is_not_counted_in_its_length() -> None:
    data = nl.encode_message(1, 0, 1, b"abcde")
    assert len(data) == 24 and struct.unpack_from("=I", data)[0] == 21
    assert nl.decode_messages(data)[0].payload == b"abcde"


def test_a_buffer_with_three_messages_decodes_to_three() -> None:
    data = b"".join(nl.encode_message(0x0300, 0, seq, b"x" * seq) for seq in (1, 2, 3))
    assert [(m.seq, m.payload) for m in nl.decode_messages(data)] == [(1, b"x"), (2, b"xx"), (3, b"xxx")]


def test_the_last_message_may_lack_its_padding() -> None:
    data = nl.encode_message(1, 0, 1, b"abc")[:19]
    assert nl.decode_messages(data)[0].payload == b"abc"


@pytest.mark.parametrize("cut", range(1, len(BIND_5)))
def test_a_truncated_trailing_message_is_an_error_at_every_cut(cut: int) -> None:
    with pytest.raises(NetlinkDecodeError, match="truncated netlink"):
        nl.decode_messages(BIND_5 + BIND_5[:cut])


def test_a_length_shorter_than_the_header_is_an_error() -> None:
    with pytest.raises(NetlinkDecodeError, match="length 8, less than its 16-byte header"):
        nl.decode_messages(struct.pack("=IHHII", 8, 1, 0, 0, 0))


def test_empty_buffer_is_no_messages() -> None:
    assert nl.decode_messages(b"") == []


def test_attribute_flags_are_masked_and_kept() -> None:
    raw = struct.pack("=HH", 8, 0x8000 | 0x4000 | 3) + b"\x00\x00\x00\x07"
    assert nl.decode_attrs(raw) == [Attr(3, b"\x00\x00\x00\x07", nested=True, net_byteorder=True)]
    assert nl.decode_attrs(raw)[0].be32() == 7


def test_nested_attributes_round_trip() -> None:
    inner = [nl.attr_be32(3, 300), nl.attr_u8(9, 1)]
    outer = nl.encode_nested(4, inner) + nl.attr_string(1, "ab")
    attrs = nl.decode_attrs(outer)
    assert [a.type for a in attrs] == [4, 1] and attrs[0].nested
    assert [(c.type, c.value) for c in attrs[0].children()] == [(3, b"\x00\x00\x01\x2c"), (9, b"\x01")]
    assert attrs[1].string() == "ab" and attrs[1].value == b"ab\0"
    assert len(outer) == 4 + 8 + 8 + 8   # nest header, two padded children, padded string


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_truncated_attribute_is_an_error(cut: int) -> None:
    with pytest.raises(NetlinkDecodeError, match="truncated attribute"):
        nl.decode_attrs(nl.attr_be32(1, 5) + nl.attr_be32(2, 6)[:cut])


def test_a_fixed_size_read_of_the_wrong_size_says_so() -> None:
    with pytest.raises(NetlinkDecodeError, match="has 1 bytes, expected 4"):
        Attr(2, b"\x01").be32()


def test_encode_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="type 70000 does not fit"):
        nl.encode_message(70000, 0, 0)
    with pytest.raises(ValueError, match="top two bits are flags"):
        nl.encode_attr(0x4001, b"")
    with pytest.raises(ValueError, match="res_id 70000"):
        nl.encode_nfgen(0, 70000)


def _error(code: int, req_type: int = 0x0302, req_seq: int = 9) -> Message:
    payload = struct.pack("=i", code) + struct.pack("=IHHII", 28, req_type, 5, req_seq, 0)
    return nl.decode_messages(nl.encode_message(nl.NLMSG_ERROR, 0x100, req_seq, payload))[0]


def test_nlmsg_error_decodes_to_its_errno_and_request() -> None:
    assert nl.decode_error(_error(0)) == nl.Ack(0, 0x0302, 9)
    assert nl.decode_error(_error(-errno.EBUSY)) == nl.Ack(errno.EBUSY, 0x0302, 9)


def test_a_short_nlmsg_error_is_an_error() -> None:
    with pytest.raises(NetlinkDecodeError, match="shorter than the 20"):
        nl.decode_error(Message(nl.NLMSG_ERROR, 0, 0, 0, b"\0\0\0\0"))


@pytest.mark.parametrize(("code", "cls"), [(errno.EEXIST, FileExistsError), (errno.ENOENT, FileNotFoundError),
                                           (errno.EPERM, PermissionError), (errno.ETIMEDOUT, TimeoutError),
                                           (errno.EBUSY, OSError)])
def test_os_error_picks_the_subclass_and_says_what_failed(code: int, cls: type[OSError]) -> None:
    exc = nl.os_error(code, "binding NFQUEUE 5")
    assert type(exc) is cls and exc.errno == code
    assert exc.strerror.startswith("binding NFQUEUE 5: ") and errno.errorcode[code] in exc.strerror
