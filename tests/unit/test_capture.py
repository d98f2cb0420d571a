"""lab.evidence on pcaps built in memory: what each failure looks like in the summary, and broken files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.evidence import (
    CaptureError, CaptureSummary, ConnectionSummary, TcpdumpStats, read_capture, render, summarize, tcpdump_stats,
)
from lab.evidence.__main__ import main
from tests.support.pcap_builder import (
    LINK_EN10MB, LINK_NULL, LINK_RAW, LINK_SLL, LINK_SLL2, Flow, Packet, global_header, ip_packet,
    ipv4_packet, link_frame, record, write_pcap,
)

MS = 1_000_000


def only(summary: CaptureSummary) -> ConnectionSummary:
    assert len(summary.connections) == 1, summary.connections
    return summary.connections[0]


def clean_flow(total: int = 3000, chunk: int = 1000) -> Flow:
    """Handshake, ``total`` bytes client → server in ``chunk``s each ACKed, FIN each way."""
    flow = Flow()
    flow.handshake()
    for _ in range(total // chunk):
        flow.send("c", b"x" * chunk)
        flow.send("s")
    flow.close()
    return flow


# --------------------------------------------------------------------------- conversations

def test_handshake_data_and_fin_each_way() -> None:
    conn = only(summarize(write_pcap(clean_flow().packets)))
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert (str(conn.client), str(conn.server), conn.roles_from) == ("127.0.0.1:40000", "127.0.0.1:7000", "syn")
    assert (c2s.syn.count, c2s.syn_ack.count, c2s.fin.count, c2s.rst.count) == (1, 0, 1, 0)
    assert (s2c.syn.count, s2c.syn_ack.count, s2c.fin.count, s2c.rst.count) == (0, 1, 1, 0)
    assert (c2s.payload_bytes, s2c.payload_bytes) == (3000, 0)
    assert (c2s.acked_bytes, s2c.acked_bytes) == (3000, 0)
    assert c2s.retransmissions == s2c.retransmissions == 0
    assert c2s.duplicate_acks == s2c.duplicate_acks == 0
    assert c2s.keepalive_probes == c2s.zero_windows == c2s.window_probes == 0
    assert conn.outcome == "closed"
    assert c2s.syn.first == 0.0 and s2c.syn_ack.first == pytest.approx(0.001)


def test_timeline_uses_relative_sequence_numbers_and_capture_relative_times() -> None:
    conn = only(summarize(write_pcap(clean_flow().packets)))
    assert [(e.direction, e.what, e.seq, e.length) for e in conn.timeline] == [
        ("c2s", "SYN", 0, 0),
        ("s2c", "SYN-ACK", 0, 0),
        ("c2s", "first data", 1, 1000),
        ("c2s", "last data", 2001, 1000),
        ("c2s", "FIN", 3001, 0),
        ("s2c", "FIN", 1, 0),
    ]
    assert [e.t for e in conn.timeline] == pytest.approx([0.0, 0.001, 0.003, 0.007, 0.009, 0.010])


def test_server_abort_is_an_rst_from_the_server() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"hello")
    flow.send("s", flags="RA")
    conn = only(summarize(write_pcap(flow.packets)))
    assert conn.server_to_client.rst.count == 1
    assert conn.server_to_client.rst.first == pytest.approx(0.004)
    assert conn.client_to_server.rst.count == 0
    assert conn.server_to_client.fin.count == conn.client_to_server.fin.count == 0
    assert conn.outcome == "reset by server"
    assert [e.what for e in conn.events("RST")] == ["RST"] and conn.events("RST")[0].direction == "s2c"


def test_refused_connect_is_a_syn_answered_by_rst() -> None:
    flow = Flow()
    flow.send("c", flags="S", ack=0)
    flow.send("s", flags="RA", seq=0)
    conn = only(summarize(write_pcap(flow.packets)))
    assert conn.roles_from == "syn"
    assert conn.client_to_server.syn.count == 1
    assert conn.server_to_client.syn_ack.count == 0 and conn.server_to_client.rst.count == 1
    assert conn.outcome == "refused"


def test_unanswered_syns_are_counted_and_called_no_answer() -> None:
    flow = Flow()
    for _ in range(3):      # the same ISN: retransmissions of one connect, not three connections
        flow.send("c", flags="S", ack=0, seq=1000, dt_ns=1000 * MS)
    conn = only(summarize(write_pcap(flow.packets)))
    assert conn.client_to_server.syn.count == 3
    assert conn.server_to_client.packets == 0
    assert conn.outcome == "no answer"


def test_retransmitted_bytes_count_once() -> None:
    flow = Flow()
    flow.handshake()
    isn = flow.nxt["c"]
    flow.send("c", b"a" * 1000)                      # rel 1..1000
    flow.send("c", b"b" * 500)                       # rel 1001..1500
    flow.send("c", b"a" * 1000, seq=isn)             # the first segment again: all 1000 seen
    flow.send("c", b"c" * 700, seq=isn + 1000)       # 500 seen + 200 new (repacketized)
    flow.send("s")
    c2s = only(summarize(write_pcap(flow.packets))).client_to_server
    assert c2s.payload_bytes == 1700
    assert c2s.retransmissions == 2
    assert c2s.retransmitted_bytes == 1500
    assert c2s.acked_bytes == 1700


def test_retransmissions_are_on_the_timeline() -> None:
    flow = Flow()
    flow.handshake()
    isn = flow.nxt["c"]
    flow.send("c", b"a" * 100)
    for backoff in (200, 400, 800):
        flow.send("c", b"a" * 100, seq=isn, dt_ns=backoff * MS)
    conn = only(summarize(write_pcap(flow.packets)))
    retrans = conn.events("retransmission", "c2s")
    assert [(e.seq, e.length) for e in retrans] == [(1, 100)] * 3
    assert [e.t for e in retrans] == pytest.approx([0.203, 0.603, 1.403])
    assert conn.client_to_server.payload_bytes == 100


def test_keepalive_probes_and_their_answers() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"x" * 100)
    flow.send("s")
    for answered in (True, True, False):     # the third probe meets a dead host: no answer
        flow.send("c", seq=flow.nxt["c"] - 1, dt_ns=2000 * MS)
        if answered:
            flow.send("s")
    conn = only(summarize(write_pcap(flow.packets)))
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert (c2s.keepalive_probes, c2s.keepalive_answered) == (3, 2)
    assert c2s.retransmissions == 0 and c2s.payload_bytes == 100
    assert s2c.duplicate_acks == 0 and s2c.keepalive_probes == 0
    assert [e.seq for e in conn.events("keepalive probe", "c2s")] == [100, 100, 100]
    assert len(conn.events("keepalive answered", "s2c")) == 2


def test_one_byte_keepalive_is_a_probe_not_a_retransmission() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"x" * 10)
    flow.send("s")
    flow.send("c", b"\x00", seq=flow.nxt["c"] - 1, dt_ns=7200_000 * MS)   # Windows style: one garbage byte
    flow.send("s")
    c2s = only(summarize(write_pcap(flow.packets))).client_to_server
    assert (c2s.keepalive_probes, c2s.keepalive_answered) == (1, 1)
    assert (c2s.retransmissions, c2s.payload_bytes) == (0, 10)


def test_resending_an_unacknowledged_last_byte_is_a_retransmission_not_a_keepalive() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"x")
    flow.send("c", b"x", seq=flow.nxt["c"] - 1, dt_ns=200 * MS)   # no ACK came: data is outstanding
    c2s = only(summarize(write_pcap(flow.packets))).client_to_server
    assert (c2s.retransmissions, c2s.keepalive_probes, c2s.payload_bytes) == (1, 0, 1)


def test_zero_window_backpressure_and_window_probes() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"x" * 1000)
    flow.send("s", window=0)                                  # the server's app stopped reading
    for _ in range(2):                                        # Linux probes: 0 bytes at snd.una - 1
        flow.send("c", seq=flow.nxt["c"] - 1, dt_ns=200 * MS)
        flow.send("s", window=0)
    flow.send("s", window=65535, dt_ns=500 * MS)              # it read again
    flow.send("c", b"y" * 500)
    conn = only(summarize(write_pcap(flow.packets)))
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert s2c.zero_windows == 3
    assert c2s.window_probes == 2 and c2s.keepalive_probes == 0
    assert c2s.payload_bytes == 1500 and c2s.retransmissions == 0
    assert s2c.duplicate_acks == 0          # repeated zero-window ACKs are backpressure, not loss
    assert [e.what for e in conn.timeline if e.direction == "s2c" and "window" in e.what] == \
        ["zero-window", "window-open"]
    assert conn.events("zero-window")[0].t == pytest.approx(0.004)


def test_one_byte_window_probe_into_a_closed_window() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"x" * 100)
    flow.send("s", window=0)
    flow.send("c", b"y", dt_ns=300 * MS)                       # BSD style: one new byte
    flow.send("s", window=0, ack=flow.nxt["c"] - 1)            # not accepted
    flow.send("c", b"y", seq=flow.nxt["c"] - 1, dt_ns=600 * MS)
    c2s = only(summarize(write_pcap(flow.packets))).client_to_server
    assert c2s.window_probes == 2
    assert c2s.retransmissions == 0
    assert c2s.payload_bytes == 101


def test_duplicate_acks_when_a_segment_is_missing() -> None:
    flow = Flow()
    flow.handshake()
    flow.send("c", b"1" * 100)
    flow.send("s")                                   # ACK 101: not a duplicate
    hole = flow.nxt["c"]
    flow.nxt["c"] += 100                             # segment 2 lost before the capture point
    for n in range(3, 6):
        flow.send("c", bytes([n]) * 100)
        flow.send("s", ack=hole)                     # the receiver keeps asking for 101
    flow.send("c", b"2" * 100, seq=hole)             # fast retransmit fills the hole
    flow.send("s")
    conn = only(summarize(write_pcap(flow.packets)))
    assert conn.server_to_client.duplicate_acks == 3
    assert conn.client_to_server.payload_bytes == 500
    # Its first copy was never captured, so the capture cannot call it a retransmission.
    assert conn.client_to_server.retransmissions == 0


def test_new_syn_on_a_finished_four_tuple_is_a_new_connection() -> None:
    first = clean_flow(total=100, chunk=100)
    second = Flow(client_isn=900_000, server_isn=800_000, start_ns=first.time_ns + 1000 * MS)
    second.handshake()
    second.send("c", b"z" * 50)
    second.send("s", flags="RA")
    summary = summarize(write_pcap(first.packets + second.packets))
    assert [c.index for c in summary.connections] == [1, 2]
    assert [c.outcome for c in summary.connections] == ["closed", "reset by server"]
    assert [c.client_to_server.payload_bytes for c in summary.connections] == [100, 50]
    assert summary.connections_to(7000) == summary.connections


# --------------------------------------------------------------------------- roles

def mid_stream(client_port: int = 40000, server_port: int = 7000) -> list[Packet]:
    """A capture that starts after the handshake: server speaks first."""
    flow = Flow(client=("127.0.0.1", client_port), server=("127.0.0.1", server_port))
    flow.send("s", b"s" * 300)
    flow.send("c", b"c" * 20)
    flow.send("s")
    return flow.packets


def test_server_port_decides_roles_without_a_handshake() -> None:
    conn = only(summarize(write_pcap(mid_stream(40000, 50000)), server_port=50000))
    assert conn.roles_from == "server-port"
    assert conn.server.port == 50000
    assert (conn.client_to_server.payload_bytes, conn.server_to_client.payload_bytes) == (20, 300)
    assert conn.client_to_server.acked_bytes is None     # where the stream began is unknown
    assert conn.client_to_server.syn.count == 0


def test_without_handshake_or_server_port_the_lower_port_is_a_guessed_server() -> None:
    conn = only(summarize(write_pcap(mid_stream(40000, 7000))))
    assert conn.roles_from == "guess"
    assert conn.server.port == 7000
    assert "roles guessed" in render(summarize(write_pcap(mid_stream(40000, 7000))))


def test_the_syn_beats_server_port() -> None:
    conn = only(summarize(write_pcap(clean_flow().packets), server_port=40000))
    assert (conn.client.port, conn.roles_from) == (40000, "syn")


# --------------------------------------------------------------------------- file formats

def facts(summary: CaptureSummary) -> list[dict[str, object]]:
    return [c.as_dict() for c in summary.connections]


@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_both_byte_orders_and_both_timestamp_resolutions(byte_order: str, nanosecond: bool) -> None:
    packets = clean_flow().packets
    summary = summarize(write_pcap(packets, byte_order=byte_order, nanosecond=nanosecond))
    assert summary.byte_order == {"<": "little", ">": "big"}[byte_order]
    assert summary.nanosecond is nanosecond
    assert facts(summary) == facts(summarize(write_pcap(packets)))
    assert summary.start == pytest.approx(packets[0].time_ns / 1e9)


def test_nanosecond_files_keep_nanoseconds() -> None:
    flow = Flow()
    flow.send("c", flags="S", ack=0)
    flow.send("s", flags="SA", dt_ns=123)
    nano = only(summarize(write_pcap(flow.packets, nanosecond=True)))
    micro = only(summarize(write_pcap(flow.packets, nanosecond=False)))
    assert nano.server_to_client.syn_ack.first == pytest.approx(123e-9, abs=1e-12)
    assert micro.server_to_client.syn_ack.first == 0.0


@pytest.mark.parametrize("link, name", [(LINK_EN10MB, "EN10MB"), (LINK_RAW, "RAW"), (LINK_SLL, "LINUX_SLL"),
                                        (LINK_SLL2, "LINUX_SLL2"), (LINK_NULL, "NULL")])
def test_link_types(link: int, name: str) -> None:
    packets = clean_flow().packets
    summary = summarize(write_pcap(packets, link=link))
    assert summary.link_type == name
    assert summary.skipped == {}
    assert facts(summary) == facts(summarize(write_pcap(packets)))


def test_vlan_tagged_ethernet() -> None:
    packets = clean_flow().packets
    assert facts(summarize(write_pcap(packets, vlan=True))) == facts(summarize(write_pcap(packets)))


def test_ipv6() -> None:
    flow = Flow(client=("::1", 40000), server=("::1", 7000))
    flow.handshake()
    flow.send("c", b"6" * 600)
    flow.send("s", flags="RA")
    conn = only(summarize(write_pcap(flow.packets)))
    assert (str(conn.client), str(conn.server)) == ("[::1]:40000", "[::1]:7000")
    assert conn.client_to_server.payload_bytes == 600
    assert conn.outcome == "reset by server"


@pytest.mark.parametrize("link", [LINK_SLL, LINK_SLL2])
def test_outgoing_copy_of_a_loopback_packet_is_not_counted_twice(link: int) -> None:
    out = [global_header(link=link)]
    packets = clean_flow().packets
    for p in packets:
        for packet_type in (4, 0):   # as "-i any" could see it on lo: leaving, then arriving
            frame = link_frame(link, ip_packet(p), sll_packet_type=packet_type, sll_hatype=772)
            out.append(record(frame, p.time_ns))
    summary = summarize(b"".join(out))
    assert summary.skipped == {"loopback duplicate": len(packets)}
    assert only(summary).client_to_server.retransmissions == 0
    assert facts(summary) == facts(summarize(write_pcap(packets)))


def test_frames_that_are_not_tcp_are_skipped_and_counted() -> None:
    packets = clean_flow().packets
    udp = ipv4_packet(packets[0], proto=17, body=struct.pack(">HHHH", 5353, 5353, 8, 0))
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\x00" * 28
    fragment = bytearray(ipv4_packet(packets[0]))
    fragment[6:8] = struct.pack(">H", 0x2000)      # more fragments follow
    short = link_frame(LINK_EN10MB, ip_packet(packets[0]))[:30]
    extra = [link_frame(LINK_EN10MB, udp), arp, link_frame(LINK_EN10MB, bytes(fragment)), short]
    data = write_pcap(packets) + b"".join(record(f, packets[-1].time_ns) for f in extra)
    summary = summarize(data)
    assert summary.skipped == {"not TCP": 1, "not IP": 1, "IP fragment": 1, "truncated by snaplen": 1}
    assert summary.frames == len(packets) + 4 and summary.tcp_segments == len(packets)
    assert facts(summary) == facts(summarize(write_pcap(packets)))


def test_payload_cut_by_snaplen_still_counts_its_bytes() -> None:
    # tcpdump -s 96 keeps headers only; the IP length still says what was sent.
    packets = clean_flow().packets
    out = [global_header(snaplen=96)]
    for p in packets:
        frame = link_frame(LINK_EN10MB, ip_packet(p))
        out.append(record(frame[:96], p.time_ns, orig_len=len(frame)))
    assert only(summarize(b"".join(out))).client_to_server.payload_bytes == 3000


# --------------------------------------------------------------------------- broken files

def valid_file() -> bytes:
    return write_pcap(clean_flow(total=200, chunk=100).packets)


@pytest.mark.parametrize("data, message", [
    (b"", "offset 0: file is 0 bytes, shorter than the 24-byte pcap header"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "offset 0: file is 6 bytes"),
    (b"\x00" * 24, "offset 0: bad magic 0x00000000: not a pcap file"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "offset 0: bad magic 0x47455420"),
    (b"\x0a\x0d\x0d\x0a" + b"\x00" * 28, "offset 0: this is a pcapng file"),
    (global_header(link=105), "offset 20: unsupported link type 105"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1), "offset 4: unsupported pcap version 3.0"),
    (global_header() + b"\x00" * 10, "offset 24: truncated record header: 10 of 16 bytes"),
    (global_header() + struct.pack("<IIII", 1, 0, 4000, 4000) + b"\x00" * 100,
     "offset 24: truncated record: header says 4000 captured bytes, 100 remain in the file"),
    (global_header() + struct.pack("<IIII", 1, 1_000_000, 0, 0), "offset 28: bad timestamp"),
])
def test_broken_files_raise_capture_error_naming_offset_and_problem(data: bytes, message: str) -> None:
    with pytest.raises(CaptureError) as info:
        summarize(data)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_a_file_cut_mid_record_names_that_record() -> None:
    data = valid_file()
    last = len(data) - (16 + 54)                  # the final record: a bare ACK in Ethernet
    with pytest.raises(CaptureError) as info:
        summarize(data[:-5])
    assert info.value.offset == last
    assert "truncated record: header says 54 captured bytes, 49 remain" in str(info.value)


def record_boundaries(data: bytes) -> set[int]:
    offsets, offset = {24}, 24
    while offset < len(data):
        (incl,) = struct.unpack_from("<I", data, offset + 8)
        offset += 16 + incl
        offsets.add(offset)
    return offsets


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0))
def test_truncating_a_valid_file_anywhere_but_a_record_boundary_is_an_error(cut: int) -> None:
    data = valid_file()
    cut %= len(data)
    if cut in record_boundaries(data):
        summarize(data[:cut])
    else:
        with pytest.raises(CaptureError):
            summarize(data[:cut])


@settings(max_examples=300, deadline=None)
@given(link=st.sampled_from([LINK_EN10MB, LINK_RAW, LINK_SLL, LINK_SLL2, LINK_NULL]),
       byte_order=st.sampled_from(["<", ">"]), nanosecond=st.booleans(), tail=st.binary(max_size=600))
def test_random_bytes_after_a_valid_header_raise_only_capture_error(
        link: int, byte_order: str, nanosecond: bool, tail: bytes) -> None:
    try:
        summary = summarize(global_header(link=link, byte_order=byte_order, nanosecond=nanosecond) + tail)
    except CaptureError as exc:
        assert str(exc).startswith("offset ")
    else:
        json.dumps(summary.as_dict())
        render(summary)


@settings(max_examples=300, deadline=None)
@given(link=st.sampled_from([LINK_EN10MB, LINK_RAW, LINK_SLL, LINK_SLL2, LINK_NULL]),
       frames=st.lists(st.binary(max_size=120), max_size=8))
def test_random_frames_in_well_formed_records_are_skipped_never_raised(link: int, frames: list[bytes]) -> None:
    data = global_header(link=link) + b"".join(record(f, 10**18 + i * 1000) for i, f in enumerate(frames))
    summary = summarize(data)
    assert summary.frames == len(frames)
    assert summary.tcp_segments + sum(summary.skipped.values()) == len(frames)
    render(summary)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c", "s"]), st.integers(0, 3000), st.integers(-2000, 2000),
                          st.sampled_from(["A", "PA", "FA", "RA", "S", "SA"]), st.integers(0, 65535)),
                max_size=30))
def test_any_segment_sequence_summarizes_with_consistent_counts(
        steps: list[tuple[str, int, int, str, int]]) -> None:
    flow = Flow()
    for side, length, seq_shift, flags, window in steps:
        flow.send(side, b"x" * length, flags=flags, seq=flow.nxt[side] + seq_shift, window=window)
    summary = summarize(write_pcap(flow.packets))
    assert sum(c.client_to_server.packets + c.server_to_client.packets for c in summary.connections) \
        == len(flow.packets)
    for conn in summary.connections:
        for d in (conn.client_to_server, conn.server_to_client):
            assert d.payload_bytes >= 0 and d.retransmitted_bytes >= 0
            assert d.keepalive_answered <= d.keepalive_probes
    assert json.loads(json.dumps(summary.as_dict())) == summary.as_dict()


# --------------------------------------------------------------------------- output

def test_as_dict_is_json() -> None:
    summary = summarize(write_pcap(clean_flow().packets))
    as_dict = summary.as_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    conn = as_dict["connections"][0]
    assert conn["client"] == "127.0.0.1:40000" and conn["outcome"] == "closed"
    assert conn["client_to_server"]["payload_bytes"] == 3000
    assert conn["client_to_server"]["syn"] == {"count": 1, "first": 0.0}
    assert conn["timeline"][0] == {"t": 0.0, "direction": "c2s", "what": "SYN", "seq": 0, "length": 0}


def test_render_reads_like_the_exchange() -> None:
    text = render(summarize(write_pcap(clean_flow().packets)))
    lines = text.splitlines()
    assert lines[0] == "capture: 12 frames (EN10MB), 12 TCP segments, 0.011000 s, 1 connection"
    assert "connection 1: 127.0.0.1:40000 → 127.0.0.1:7000: closed" in lines
    assert "  client → server: 1 SYN, 1 FIN, 0 RST; 3000 bytes, 0 retransmissions" in lines
    assert "  server → client: 1 SYN-ACK, 1 FIN, 0 RST; 0 bytes, 0 retransmissions" in lines
    assert "    +0.003000 s  client → server  first data (seq 1, 1000 bytes)" in lines
    assert "    +0.010000 s  server → client  FIN" in lines


def test_render_folds_bursts_and_mentions_the_extras() -> None:
    flow = Flow()
    flow.handshake()
    isn = flow.nxt["c"]
    flow.send("c", b"a" * 100)
    for backoff in (200, 400, 800):
        flow.send("c", b"a" * 100, seq=isn, dt_ns=backoff * MS)
    flow.send("s", window=0)
    text = render(summarize(write_pcap(flow.packets)))
    assert "  client → server: 1 SYN, 0 FIN, 0 RST; 100 bytes, 3 retransmissions" in text
    assert "retransmission (seq 1, 100 bytes) ×3 until +1.403000 s" in text
    assert "1 zero window" in text


def test_cli_prints_text_and_json(tmp_path, capsys) -> None:
    path = tmp_path / "lo.pcap"
    path.write_bytes(write_pcap(mid_stream(40000, 50000)))
    assert main([str(path), "--server-port", "50000"]) == 0
    assert "connection 1: 127.0.0.1:40000 → 127.0.0.1:50000: open" in capsys.readouterr().out
    assert main([str(path), "--server-port", "50000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["connections"][0]["server"] == "127.0.0.1:50000"


def test_cli_reports_a_broken_file_and_exits_2(tmp_path, capsys) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(valid_file()[:30])
    assert main([str(path)]) == 2
    assert capsys.readouterr().err == f"capture: {path}: offset 24: truncated record header: 6 of 16 bytes\n"
    assert main([str(tmp_path / "missing.pcap")]) == 2


def test_module_runs_as_a_program(tmp_path) -> None:
    path = tmp_path / "lo.pcap"
    path.write_bytes(write_pcap(clean_flow().packets))
    done = subprocess.run([sys.executable, "-m", "lab.evidence", str(path), "--json"],
                          capture_output=True, timeout=30, check=True)
    assert json.loads(done.stdout)["connections"][0]["client_to_server"]["payload_bytes"] == 3000


def test_read_capture_exposes_segments() -> None:
    capture = read_capture(write_pcap(clean_flow().packets))
    assert capture.frames == len(capture.segments) == 12
    first = capture.segments[0]
    assert (first.src.port, first.dst.port, first.seq, first.payload_len) == (40000, 7000, 1000, 0)


def test_tcpdump_stats_reads_the_closing_counts() -> None:
    stderr = ("tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
              "1 packet captured\n16 packets received by filter\n758 packets dropped by kernel\n")
    assert tcpdump_stats(stderr) == TcpdumpStats(captured=1, received=16, dropped=758)
    assert tcpdump_stats("tcpdump: lo: You don't have permission to capture on that device\n") == TcpdumpStats()
