"""ICMP errors in a capture: a router's "unreachable" and "fragmentation needed", read back with the segment they quote."""

from __future__ import annotations

import struct

import pytest

from lab.evidence.pcap import ICMP_CODES, Endpoint, IcmpError, read_capture
from tests.support.pcap_builder import LINK_EN10MB, Packet, global_header, ipv4_packet, link_frame, record

SYN = Packet(1_000_000_000, ("172.30.0.4", 40100), ("172.30.0.2", 7000), 77, 0, "S")
ROUTER = Packet(1_000_400_000, ("172.30.0.2", 0), ("172.30.0.4", 0), 0, 0, "")


def icmp_error(kind: int, code: int, quoted: bytes, *, mtu: int = 0) -> bytes:
    body = struct.pack(">BBHHH", kind, code, 0, 0, mtu) + quoted
    return ipv4_packet(ROUTER, proto=1, body=body)


def pcap(*ips: bytes) -> bytes:
    return global_header() + b"".join(record(link_frame(LINK_EN10MB, ip), SYN.time_ns + i * 1000) for i, ip in enumerate(ips))


@pytest.mark.parametrize("name", ["host-unreachable", "port-unreachable", "admin-prohibited"])
def test_an_unreachable_about_a_syn_names_the_connection_it_is_about(name: str) -> None:
    quoted = ipv4_packet(SYN)[:28]                     # the IP header and 8 bytes: what routers quote at least
    capture = read_capture(pcap(ipv4_packet(SYN), icmp_error(3, ICMP_CODES[name], quoted)))
    assert len(capture.segments) == 1 and capture.skipped == {}
    assert capture.icmp == [IcmpError(1, SYN.time_ns + 1000, "172.30.0.2", "172.30.0.4", 3, ICMP_CODES[name],
                                      Endpoint("172.30.0.4", 40100), Endpoint("172.30.0.2", 7000), 0)]


def test_fragmentation_needed_carries_the_next_hop_mtu_and_a_whole_quote_is_fine_too() -> None:
    capture = read_capture(pcap(icmp_error(3, 4, ipv4_packet(SYN), mtu=1200)))
    (error,) = capture.icmp
    assert (error.type, error.code, error.mtu, error.about_dst) == (3, 4, 1200, Endpoint("172.30.0.2", 7000))


def test_icmp_that_is_not_an_error_or_not_about_tcp_is_skipped_and_counted() -> None:
    echo = ipv4_packet(ROUTER, proto=1, body=struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"ping")
    udp_quote = icmp_error(3, 3, ipv4_packet(SYN, proto=17, body=struct.pack(">HHHH", 5353, 53, 8, 0)))
    short_quote = icmp_error(3, 1, ipv4_packet(SYN)[:22])        # the quoted ports cut off
    capture = read_capture(pcap(echo, udp_quote, short_quote))
    assert capture.icmp == [] and capture.segments == []
    assert capture.skipped == {"ICMP, not an error": 1, "ICMP about something not TCP": 1, "truncated by snaplen": 1}


def test_a_syns_mss_option_is_read_past_padding_and_other_options() -> None:
    options = bytes([1, 1, 4, 2, 2, 4, 0x04, 0x88])     # NOP NOP SACK-permitted MSS 1160
    header = struct.pack(">HHIIBBHHH", 40100, 7000, 77, 0, 7 << 4, 0x02, 65535, 0, 0) + options
    (syn,) = read_capture(pcap(ipv4_packet(SYN, body=header))).segments
    assert syn.mss == 1160
    no_option = struct.pack(">HHIIBBHHH", 40100, 7000, 77, 0, 5 << 4, 0x02, 65535, 0, 0)
    assert read_capture(pcap(ipv4_packet(SYN, body=no_option))).segments[0].mss is None


def test_payload_crc_tells_two_copies_of_a_segment_apart_when_a_byte_differs() -> None:
    def data(body: bytes) -> bytes:
        return ipv4_packet(SYN, body=struct.pack(">HHIIBBHHH", 40100, 7000, 78, 1, 5 << 4, 0x18, 65535, 0, 0) + body)

    a, b, c = read_capture(pcap(data(b"abcdefgh"), data(b"abcdefgh"), data(b"abcDefgh"))).segments
    assert a.payload_crc == b.payload_crc != c.payload_crc and a.payload_len == c.payload_len == 8
    assert a.mss is None     # not a SYN
