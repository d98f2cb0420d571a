"""The conntrack table parser on real lines, and the cttimeout / ctnetlink messages on bytes."""

from __future__ import annotations

import struct

import pytest

from lab.inlab.agent import conntrack as ct
from lab.inlab.agent import netlink as nl
from lab.inlab.agent.conntrack import Entry, TcpTimeoutPolicy, Tuple

# Real lines, copied from a router namespace's /proc/net/nf_conntrack during the netns tests:
# a connection under a 3 s cttimeout policy, one with the default 5-day timeout, a closed one in
# TIME_WAIT, and a UDP datagram nobody answered.
SHORT = ("ipv4     2 tcp      6 2 ESTABLISHED src=10.213.1.2 dst=10.213.2.2 sport=55446 dport=7000 "
         "src=10.213.2.2 dst=10.213.1.2 sport=7000 dport=55446 [ASSURED] mark=0 zone=0 use=2")
DEFAULT = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.213.1.2 dst=10.213.2.2 sport=39466 dport=7001 "
           "src=10.213.2.2 dst=10.213.1.2 sport=7001 dport=39466 [ASSURED] mark=0 zone=0 use=2")
TIME_WAIT = ("ipv4     2 tcp      6 119 TIME_WAIT src=10.213.1.2 dst=10.213.2.2 sport=49666 dport=7000 "
             "src=10.213.2.2 dst=10.213.1.2 sport=7000 dport=49666 [ASSURED] mark=0 zone=0 use=2")
UDP = ("ipv4     2 udp      17 29 src=10.213.1.2 dst=10.213.2.2 sport=33997 dport=5353 [UNREPLIED] "
       "src=10.213.2.2 dst=10.213.1.2 sport=5353 dport=33997 mark=0 zone=0 use=2")
TABLE = "\n".join([SHORT, DEFAULT, TIME_WAIT, UDP]) + "\n"


def test_parse_an_established_line_whole() -> None:
    assert ct.parse_line(SHORT) == Entry(
        l3="ipv4", l4="tcp", l4_number=6, timeout=2, state="ESTABLISHED",
        original=Tuple("10.213.1.2", "10.213.2.2", 55446, 7000), reply=Tuple("10.213.2.2", "10.213.1.2", 7000, 55446),
        flags=frozenset({"ASSURED"}), mark=0, zone=0, use=2, extra={})


def test_parse_udp_has_no_state_and_the_flag_between_the_tuples() -> None:
    entry = ct.parse_line(UDP)
    assert (entry.l4, entry.l4_number, entry.timeout, entry.state) == ("udp", 17, 29, None)
    assert entry.flags == frozenset({"UNREPLIED"})
    assert entry.reply == Tuple("10.213.2.2", "10.213.1.2", 5353, 33997)


def test_accounting_counters_and_unknown_keys() -> None:
    line = ("ipv4     2 tcp      6 300 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 packets=3 bytes=180 "
            "src=5.6.7.8 dst=1.2.3.4 sport=2 dport=1 packets=2 bytes=120 [ASSURED] mark=7 secctx=x zone=1 use=1")
    entry = ct.parse_line(line)
    assert entry.original == Tuple("1.2.3.4", "5.6.7.8", 1, 2, 3, 180)
    assert entry.reply == Tuple("5.6.7.8", "1.2.3.4", 2, 1, 2, 120)
    assert (entry.mark, entry.zone, entry.use, entry.extra) == (7, 1, 1, {"secctx": "x"})


def test_the_table_and_a_ports_entries() -> None:
    entries = ct.parse_table(TABLE)
    assert len(entries) == 4
    assert [e.original.sport for e in ct.entries_for_port(entries, 7000)] == [55446, 49666]
    assert [e.state for e in ct.entries_for_port(entries, 7000)] == ["ESTABLISHED", "TIME_WAIT"]
    assert ct.entries_for_port(entries, 5353) == []
    assert [e.timeout for e in ct.entries_for_port(entries, 5353, "udp")] == [29]


def test_read_table_of_a_missing_file_is_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert ct.read_table(str(tmp_path / "absent")) == []
    (tmp_path / "t").write_text(TABLE)
    assert len(ct.read_table(str(tmp_path / "t"))) == 4


@pytest.mark.parametrize(("line", "message"), [
    ("ipv4 2 tcp", "at least 5 fields"),
    ("ipv4 2 tcp six 3 src=a dst=b src=b dst=a", "must be integers"),
    ("ipv4 2 tcp 6 3 ESTABLISHED src=a dst=b", "1 tuple"),
    ("ipv4 2 tcp 6 3 ESTABLISHED src=a dst=b sport=1 src=b dst=a src=c dst=d", "more than two tuples"),
    ("ipv4 2 tcp 6 3 ESTABLISHED src=a dst=b junk src=b dst=a", "'junk' where key=value"),
    ("ipv4 2 tcp 6 3 ESTABLISHED src=a sport=1 src=b dst=a", "without src= and dst="),
])
def test_malformed_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ct.parse_line(line)


def test_timeout_new_message_byte_for_byte() -> None:
    payload = ct.encode_timeout_new(TcpTimeoutPolicy("short", 5, {"time_wait": 2}))
    assert payload == (bytes([0, 0, 0, 0])                                   # nfgenmsg AF_UNSPEC
                       + struct.pack("=HH", 10, 1) + b"short\0" + b"\0\0"    # CTA_TIMEOUT_NAME
                       + struct.pack("=HH", 6, 2) + b"\x00\x02" + b"\0\0"    # L3PROTO AF_INET, be16
                       + struct.pack("=HH", 5, 3) + b"\x06" + b"\0\0\0"      # L4PROTO TCP, u8
                       + struct.pack("=HH", 20, 4 | nl.NLA_F_NESTED)         # CTA_TIMEOUT_DATA
                       + struct.pack("=HH", 8, 3) + struct.pack("!I", 5)     # ESTABLISHED
                       + struct.pack("=HH", 8, 7) + struct.pack("!I", 2))    # TIME_WAIT


def test_a_policy_reply_decodes() -> None:
    data = nl.encode_nested(4, [nl.attr_be32(3, 5), nl.attr_be32(7, 120)])
    payload = (nl.encode_nfgen(0) + nl.attr_string(1, "short") + nl.attr_be16(2, 2) + nl.attr_u8(3, 6) + data
               + nl.attr_be32(5, 2))
    assert ct.decode_timeout_policy(payload) == ct.TimeoutPolicyInfo("short", 2, 6, {"established": 5,
                                                                                     "time_wait": 120}, 2)


def test_ct_delete_message_byte_for_byte() -> None:
    payload = ct.encode_ct_delete("10.213.1.2", "10.213.2.2", 40000, 7000)
    ip = (struct.pack("=HH", 8, 1) + bytes([10, 213, 1, 2]) + struct.pack("=HH", 8, 2) + bytes([10, 213, 2, 2]))
    proto = (struct.pack("=HH", 5, 1) + b"\x06\0\0\0" + struct.pack("=HH", 6, 2) + struct.pack("!H", 40000)
             + b"\0\0" + struct.pack("=HH", 6, 3) + struct.pack("!H", 7000) + b"\0\0")
    nested = (struct.pack("=HH", 4 + len(ip), 1 | nl.NLA_F_NESTED) + ip
              + struct.pack("=HH", 4 + len(proto), 2 | nl.NLA_F_NESTED) + proto)
    assert payload == bytes([2, 0, 0, 0]) + struct.pack("=HH", 4 + len(nested), 1 | nl.NLA_F_NESTED) + nested


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "", "established": 5}, "must be 1..31 characters"),
    ({"name": "x" * 32, "established": 5}, "must be 1..31 characters"),
    ({"name": "a b", "established": 5}, "must be 1..31 characters"),
    ({"name": "ok", "established": 0}, "established timeout must be a whole number of seconds"),
    ({"name": "ok", "established": 2.5}, "established timeout must be a whole number"),
    ({"name": "ok", "established": 5, "others": {"closing": 1}}, "unknown TCP state 'closing'"),
])
def test_bad_policies_are_refused(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        TcpTimeoutPolicy(**kwargs)


def test_ct_delete_refuses_bad_tuples() -> None:
    with pytest.raises(ValueError, match="sport must be a port 1..65535, not 0"):
        ct.encode_ct_delete("1.2.3.4", "5.6.7.8", 0, 1)
    with pytest.raises(ValueError, match="must be IPv4 addresses"):
        ct.encode_ct_delete("::1", "5.6.7.8", 1, 1)
