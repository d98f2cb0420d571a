"""lab.server.binding on 127.0.0.1: a server that closed first leaves TIME_WAIT on its port, and
only a binder with SO_REUSEADDR gets the port back while it lasts."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import pytest

from lab.inlab import tcptable
from lab.server.binding import BINDERS, bind_listener
from lab.sockets.framing import encode_ping
from lab.testing import running_server

HOST = "127.0.0.1"


def time_wait_on(port: int) -> list[tcptable.Row]:
    return [r for r in tcptable.parse(Path("/proc/net/tcp").read_text())
            if r.local == (HOST, port) and r.state == tcptable.TIME_WAIT]


def close_first(port: int, clients: int = 3) -> None:
    """A listener on ``port`` accepts, closes first (FIN), the clients answer, and it is closed."""
    listener = bind_listener(HOST, port, reuseaddr=True)
    peers = []
    for _ in range(clients):
        c = socket.create_connection((HOST, port), timeout=5)
        s, _ = listener.accept()
        peers.append((c, s))
    listener.close()
    for c, s in peers:
        s.close()                 # the server's FIN first: its end will be the one in TIME_WAIT
        c.settimeout(5)
        assert c.recv(10) == b""
        c.close()


@pytest.fixture
def port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_time_wait_refuses_a_bind_without_reuseaddr_and_allows_one_with_it(port: int) -> None:
    close_first(port)
    deadline = time.monotonic() + 2
    while len(time_wait_on(port)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(time_wait_on(port)) == 3
    with pytest.raises(OSError) as refused:
        BINDERS["no-reuseaddr"](HOST, port)
    assert refused.value.errno == errno.EADDRINUSE
    sock = BINDERS["reuseaddr"](HOST, port)
    assert sock.getsockname() == (HOST, port)
    sock.close()


def test_reuseaddr_still_refuses_while_something_listens(port: int) -> None:
    with bind_listener(HOST, port, reuseaddr=True):
        for name in BINDERS:
            with pytest.raises(OSError) as refused:
                BINDERS[name](HOST, port)
            assert refused.value.errno == errno.EADDRINUSE, name


@pytest.mark.parametrize("impl", ["threaded", "selectors", "forking"])
def test_the_lab_servers_restart_on_their_port_during_time_wait(impl: str) -> None:
    with running_server(impl) as srv:
        c = socket.create_connection(srv.address, timeout=5)
        with c:
            c.sendall(encode_ping(1))
            pong = b""
            while len(pong) < len(encode_ping(1)):   # served: accepted, not still in the backlog
                pong += c.recv(100)                   # (a closing listener resets what waits there)
            srv.stop()            # the server closes first: FIN from its side
            assert c.recv(10) == b""
        assert time_wait_on(srv.port), "no TIME_WAIT on the server's port"
        srv.start()               # the lab's servers bind with SO_REUSEADDR: same port, at once
        with socket.create_connection(srv.address, timeout=5):
            pass
