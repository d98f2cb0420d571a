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


def _agent_answering(reply: dict[str, object]):  # type: ignore[no-untyped-def]
    """A one-shot JSON-lines server on 127.0.0.1 that answers any request with ``reply``; (port, requests)."""
    import json
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    got: list[dict[str, object]] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rwb") as f:
            got.append(json.loads(f.readline()))
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], got


def test_an_agent_is_asked_for_its_namespace_and_its_problems_are_named(capsys) -> None:  # type: ignore[no-untyped-def]
    port, got = _agent_answering({"ok": True, "problems": [":7000: nothing listens on it"]})
    assert health.main(["--agent", f"127.0.0.1:{port}=7000,7001"]) == 1
    assert got == [{"op": "health", "listening": [7000, 7001]}]
    assert capsys.readouterr().err == f"agent 127.0.0.1:{port}: :7000: nothing listens on it\n"


def test_a_healthy_agent_passes(capsys) -> None:  # type: ignore[no-untyped-def]
    port, got = _agent_answering({"ok": True, "problems": []})
    assert health.main(["--agent", f"127.0.0.1:{port}"]) == 0
    assert got == [{"op": "health", "listening": []}]


def test_an_agent_that_does_not_answer_is_a_problem_that_says_where(capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert health.main(["--agent", f"127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err.startswith(f"agent 127.0.0.1:{port}: health: ConnectionRefusedError: ")


def test_a_malformed_agent_spec_or_a_missing_one_is_refused(capsys) -> None:  # type: ignore[no-untyped-def]
    assert health.main(["--agent", "server=70a0"]) == 1
    assert "--agent 'server=70a0' is not HOST:PORT or HOST:PORT=P1,P2,..." in capsys.readouterr().err
    assert health.main(["--agent"]) == 2
    assert capsys.readouterr().err.startswith("usage: python3 -m lab.inlab.health")
