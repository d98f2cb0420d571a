"""The healthcheck's ``:PORT`` form: listening is read from the kernel's table, with no connection made."""

from __future__ import annotations

from pathlib import Path

from lab.inlab import health

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
LISTEN_7000 = "   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 4242 1\n"
# An ESTABLISHED connection whose *local* port is 7100 (a client of something): not a listener.
CONN_7100 = "   1: 0200A8C0:1BBC 0300A8C0:9C40 01 00000000:00000000 00:00000000 00000000 10001        0 4243 1\n"


def table(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "tcp"
    path.write_text(HEADER + "".join(rows))
    return path


def test_a_listening_port_is_healthy_and_an_established_one_is_not(tmp_path: Path) -> None:
    t = table(tmp_path, LISTEN_7000, CONN_7100)
    assert health.check(":7000", table=t) is None
    assert health.check(":7100", table=t) == ":7100: nothing listens on it"


def test_an_unreadable_table_is_an_error_that_says_so(tmp_path: Path) -> None:
    problem = health.check(":7000", table=tmp_path / "missing")
    assert problem is not None and problem.startswith(":7000: cannot read ")


def test_a_malformed_address_names_both_forms() -> None:
    assert health.check("7000") == "'7000' is not HOST:PORT or :PORT"
