"""lab.evidence.legs: one connection's segments per side and in time, and the proxy's two legs paired."""

from __future__ import annotations

from lab.evidence import read_capture
from lab.evidence.anchor import FIN, RST, Window
from lab.evidence.legs import CLIENT, SERVER, connections, exchanges, pair, proxy_host, proxy_legs, retransmitted
from tests.support.pcap_builder import START_NS, Flow, write_pcap

CLIENT_HOST, PROXY_HOST, SERVER_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.4"
MS = 1_000_000


def _t(ns: int) -> float:
    return ns / 1e9


def subject_flow(port: int = 40000, *, start_ns: int = START_NS) -> Flow:
    flow = Flow((CLIENT_HOST, port), (PROXY_HOST, 7000), start_ns=start_ns)
    flow.handshake()
    return flow


def test_connections_keep_the_subjects_ports_and_split_a_reused_four_tuple() -> None:
    ours, other = subject_flow(40000), subject_flow(40001)
    ours.send("c", b"x" * 10)
    ours.close()
    again = Flow((CLIENT_HOST, 40000), (PROXY_HOST, 7000), client_isn=9000, start_ns=ours.time_ns + MS)
    again.handshake()
    pcap = read_capture(write_pcap(ours.packets + other.packets + again.packets))
    found = connections(pcap, server_port=7000, client_ports={40000})
    assert [c.client.port for c in found] == [40000, 40000]
    assert found[0].isn(CLIENT) == 1000 and found[1].isn(CLIENT) == 9000
    assert proxy_host(found) == PROXY_HOST


def test_stream_end_offset_and_acked_are_in_bytes_of_the_senders_stream() -> None:
    flow = subject_flow()
    flow.send("c", b"q" * 13)
    flow.send("s", b"r" * 1000)
    flow.send("s", b"r" * 500)
    fin = flow.send("s", flags="FA")
    unacked = flow.send("c", b"late", ack=flow.nxt["s"] - 1)
    conn = connections(read_capture(write_pcap(flow.packets)), server_port=7000)[0]
    assert conn.stream_end(SERVER) == 1500
    assert conn.offset(SERVER, fin.seq) == 1500
    request = conn.sent(CLIENT, data=True)[0]
    assert conn.acked(request)
    assert not conn.acked(next(s for s in conn.segments if s.seq == unacked.seq and s.payload_len == 4))
    assert conn.first(SERVER, FIN) is not None and conn.first(SERVER, RST) is None


def test_windows_bound_what_a_side_sent() -> None:
    flow = subject_flow()
    early = flow.send("s", b"a" * 10)
    late = flow.send("s", b"b" * 10, dt_ns=500 * MS)
    conn = connections(read_capture(write_pcap(flow.packets)), server_port=7000)[0]
    after = Window(_t(early.time_ns) + 0.1, None)
    assert [s.payload_len for s in conn.sent(SERVER, after, data=True)] == [10]
    assert conn.stream_end(SERVER, after) == 20
    assert conn.gaps(SERVER) == [(late.time_ns - early.time_ns) / 1e9]


def test_exchanges_pair_each_request_with_the_first_byte_of_its_reply() -> None:
    flow = subject_flow()
    asked = flow.send("c", b"q" * 100)
    flow.send("s", flags="A")
    first = flow.send("s", b"r" * 50, dt_ns=200 * MS)
    flow.send("s", b"r" * 50)                       # the same reply, continued
    again = flow.send("c", b"q" * 100, dt_ns=5 * MS)
    second = flow.send("s", b"r" * 100, dt_ns=200 * MS)
    conn = connections(read_capture(write_pcap(flow.packets)), server_port=7000)[0]
    assert exchanges(conn) == [(_t(asked.time_ns), _t(first.time_ns)), (_t(again.time_ns), _t(second.time_ns))]


def test_a_resent_segment_is_a_retransmission_and_new_data_is_not() -> None:
    flow = subject_flow()
    sent = flow.send("c", b"q" * 100)
    flow.send("c", b"q" * 100, seq=sent.seq, dt_ns=200 * MS)
    flow.send("c", b"n" * 10)
    conn = connections(read_capture(write_pcap(flow.packets)), server_port=7000)[0]
    assert [s.payload_len for s in retransmitted(conn, CLIENT)] == [100]


def test_pair_matches_each_first_leg_with_the_second_leg_opened_just_after_it() -> None:
    a = subject_flow(40000)
    b = subject_flow(40001, start_ns=START_NS + 2 * MS)
    leg_a = Flow((PROXY_HOST, 50000), (SERVER_HOST, 7000), start_ns=START_NS + MS // 2)
    leg_a.handshake()
    leg_b = Flow((PROXY_HOST, 50001), (SERVER_HOST, 7000), start_ns=START_NS + 2 * MS + MS // 2)
    leg_b.handshake()
    stray = Flow((CLIENT_HOST, 50002), (SERVER_HOST, 7000), start_ns=START_NS + MS)   # direct, not the proxy's
    stray.handshake()
    late = Flow((PROXY_HOST, 50003), (SERVER_HOST, 7000), start_ns=START_NS + 5_000 * MS)
    late.handshake()
    firsts = connections(read_capture(write_pcap(a.packets + b.packets)), server_port=7000)
    seconds = connections(read_capture(write_pcap(leg_a.packets + leg_b.packets + stray.packets + late.packets)),
                          server_port=7000, client_host=PROXY_HOST)
    assert [c.client.port for c in seconds] == [50000, 50001, 50003]
    paired = [(f.client.port, s.client.port if s else None) for f, s in pair(firsts, seconds)]
    assert paired == [(40000, 50000), (40001, 50001)]
    assert pair(firsts, seconds[2:])[0][1] is None


def test_proxy_legs_are_the_connections_from_the_address_the_subjects_went_to() -> None:
    subject = subject_flow()
    leg = Flow((PROXY_HOST, 50000), (SERVER_HOST, 7000))
    leg.handshake()
    direct = Flow((CLIENT_HOST, 50001), (SERVER_HOST, 7000))
    direct.handshake()
    subjects = connections(read_capture(write_pcap(subject.packets)), server_port=7000)
    server_side = read_capture(write_pcap(leg.packets + direct.packets))
    assert [c.client.port for c in proxy_legs(server_side, subjects, server_port=7000)] == [50000]
    assert proxy_legs(server_side, [], server_port=7000) == []     # no subject: no proxy address, no leg


def test_behind_the_routers_nat_the_proxy_legs_are_those_from_toxiproxys_port_range() -> None:
    # The server sees every connection from the router's address; the port says who opened it.
    router = "127.0.0.9"
    subject = subject_flow()
    leg = Flow((router, 47000), (SERVER_HOST, 7000))           # Toxiproxy's range: 46000-60999
    leg.handshake()
    direct = Flow((router, 40002), (SERVER_HOST, 7000))        # the client's range: 32768-45999
    direct.handshake()
    subjects = connections(read_capture(write_pcap(subject.packets)), server_port=7000)
    server_side = read_capture(write_pcap(leg.packets + direct.packets))
    assert [c.client for c in proxy_legs(server_side, subjects, server_port=7000)] == [(router, 47000)]
