"""lab.inlab.tcptable reads the kernel's socket table exactly: addresses, ports, states, owners."""

from __future__ import annotations

from lab.inlab import tcptable

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
# 127.0.0.1:9009 listening as root; 172.18.0.5:45678 -> 172.18.0.3:7000 established, uid 10003;
# 172.18.0.5:45680 -> 172.18.0.3:7000 in TIME_WAIT as uid 10001.
LINES = [
    "   0: 0100007F:2331 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n",
    "   1: 050012AC:B26E 030012AC:1B58 01 00000000:00000000 00:00000000 00000000 10003        0 2 1 0 20 4 30 10 -1\n",
    "   2: 050012AC:B270 030012AC:1B58 06 00000000:00000000 03:00001771 00000000 10001        0 0 3 0\n",
]


def test_rows_are_read_whole() -> None:
    rows = tcptable.parse(HEADER + "".join(LINES))
    assert rows == [
        tcptable.Row(("127.0.0.1", 9009), ("0.0.0.0", 0), 0x0A, 0, inode=1),
        tcptable.Row(("172.18.0.5", 45678), ("172.18.0.3", 7000), 0x01, 10003, inode=2),
        tcptable.Row(("172.18.0.5", 45680), ("172.18.0.3", 7000), 0x06, 10001, inode=0),
    ]


def test_queues_and_inode_are_read() -> None:
    # 0x1F4 = 500 bytes unread by the process, 0x64 = 100 bytes sent and not yet acknowledged.
    line = "   4: 030012AC:1C20 050012AC:B272 01 00000064:000001F4 00:00000000 00000000 10001        0 77123 1 0\n"
    (row,) = tcptable.parse(HEADER + line)
    assert (row.local, row.remote, row.state, row.rx_queue, row.tx_queue, row.inode) == (
        ("172.18.0.3", 7200), ("172.18.0.5", 45682), tcptable.ESTABLISHED, 500, 100, 77123)
    assert tcptable.STATES[tcptable.TIME_WAIT] == "TIME_WAIT"


def test_ports_of_one_owner_towards_one_peer() -> None:
    rows = tcptable.parse(HEADER + "".join(LINES))
    assert tcptable.ports_of(rows, uid=10003, remote=("172.18.0.3", 7000)) == {45678}
    assert tcptable.ports_of(rows, uid=10001, remote=("172.18.0.3", 7000)) == {45680}
    assert tcptable.ports_of(rows, uid=10003, remote=("172.18.0.3", 7100)) == set()
    assert tcptable.ports_of(rows, uid=0, remote=("0.0.0.0", 0)) == set()   # a listener is no connection


def test_a_torn_last_line_and_garbage_are_skipped() -> None:
    text = HEADER + LINES[1] + "   3: 0500" + "\nnot a row at all\n"
    assert [r.local for r in tcptable.parse(text)] == [("172.18.0.5", 45678)]


def test_reading_a_missing_table_gives_no_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert tcptable.read(tmp_path / "nope") == []
