"""What only the process-per-connection server can get wrong, on 127.0.0.1: zombies, the
inherited listener, a stop that leaves children behind, and a dead child taking more than its
own connection with it. The contract every server keeps is tests/loopback/test_servers.py."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from lab.inlab import tcptable
from lab.server.forking import ForkingServer
from lab.sockets.framing import Decoder, Frame, NEED_DATA, encode_data, encode_hello_request
from lab.testing import running_server

HOST = "127.0.0.1"
TIMEOUT = 5.0


def children_of(pid: int) -> dict[int, str]:
    """Every child process of ``pid`` with its state letter, read from /proc (zombies included)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == pid:
            found[int(entry.name)] = rest[0]
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def wait_for(predicate, timeout: float = TIMEOUT, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def request(sock: socket.socket, seq: int, body: bytes) -> Frame:
    sock.sendall(encode_data(seq, body))
    dec = Decoder()
    while (event := dec.next_event()) is NEED_DATA:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        dec.receive_data(chunk)
    assert isinstance(event, Frame)
    return event


def child_pids(srv) -> dict[int, int]:
    """{local port of the client: pid of the child serving it}, from the server's own account."""
    return {int(c["peer"].rsplit(":", 1)[1]): c["pid"] for c in srv.stats()["children"]}


def test_each_connection_gets_its_own_child_and_none_is_left_a_zombie() -> None:
    with running_server("forking") as srv:
        me = os.getpid()
        clients = [socket.create_connection((HOST, srv.port), timeout=TIMEOUT) for _ in range(5)]
        for i, c in enumerate(clients):
            assert request(c, 1, b"hello %d" % i).body == b"hello %d" % i
        served = child_pids(srv)
        assert set(served) == {c.getsockname()[1] for c in clients}
        assert len(set(served.values())) == 5, "one process per connection"
        assert set(served.values()) <= set(children_of(me)), "the children are the server's (this process's)"
        # Each calls itself lab-child in /proc, the name the server-agent tells children apart by.
        assert {Path(f"/proc/{pid}/comm").read_text().strip() for pid in served.values()} == {"lab-child"}
        for c in clients:
            c.close()
        # Every child exits once its client is gone, and is reaped: no Z entries left behind.
        assert wait_for(lambda: not set(served.values()) & set(children_of(me))), children_of(me)
        assert srv.stats()["active"] == 0 and srv.stats()["children"] == []
        reaped = {pid for pid, _status in srv.server.reaped}
        assert set(served.values()) <= reaped


def test_a_burst_of_short_connections_leaves_no_zombies() -> None:
    with running_server("forking") as srv:
        me = os.getpid()
        for i in range(40):
            with socket.create_connection((HOST, srv.port), timeout=TIMEOUT) as c:
                assert request(c, 1, b"x").body == b"x"
        assert wait_for(lambda: srv.stats()["accepted"] == 40 and srv.stats()["active"] == 0)
        zombies = wait_for(lambda: "Z" not in children_of(me).values(), timeout=1.0)
        assert zombies, f"zombies still there a second after the last close: {children_of(me)}"
        # Reaped (waitpid returned) a moment before the parent records it: wait for the record, exactly 40.
        assert wait_for(lambda: len(srv.server.reaped) == 40, timeout=1.0), len(srv.server.reaped)


def test_no_child_holds_the_listener() -> None:
    with running_server("forking") as srv:
        c = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        request(c, 1, b"x")
        (pid,) = child_pids(srv).values()
        rows = {r.inode: r for r in tcptable.parse(Path("/proc/net/tcp").read_text())}
        held = {rows[i].local[1]: rows[i].state for i in socket_inodes(pid) if i in rows}
        # The child holds exactly its connection (local port = the server's, ESTABLISHED), and not
        # the listening socket on the same port, nor the control port's.
        assert held == {srv.port: 0x01}, held
        c.close()


def test_stop_ends_every_child_within_its_deadline_with_a_fin() -> None:
    with running_server("forking") as srv:
        me = os.getpid()
        idle = [socket.create_connection((HOST, srv.port), timeout=TIMEOUT) for _ in range(3)]
        for c in idle:
            request(c, 1, b"x")
        srv.behave(mode="stop_reading")
        pids = set(child_pids(srv).values())
        assert len(pids) == 3
        start = time.monotonic()
        srv.stop()
        took = time.monotonic() - start
        assert took < 1.5, f"stop took {took:.2f} s"
        assert not pids & set(children_of(me)), "a child outlived stop(), or was left a zombie"
        for c in idle:
            assert c.recv(100) == b""   # each child closed its connection gently (FIN)
            c.close()


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    with running_server("forking") as srv:
        me = os.getpid()
        c = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        request(c, 1, b"x")
        (pid,) = child_pids(srv).values()
        os.kill(pid, signal.SIGSTOP)          # a stopped child cannot act on SIGTERM
        server = srv.server
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 3.5
        assert pid not in children_of(me)
        assert (pid, signal.SIGKILL) in {(p, os.WTERMSIG(s)) for p, s in server.reaped if os.WIFSIGNALED(s)}
        c.close()


def test_a_killed_child_takes_only_its_own_connection() -> None:
    with running_server("forking") as srv:
        sid = os.urandom(16)
        victim = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        other = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        other.sendall(encode_hello_request(sid))
        assert request(victim, 1, b"a").body == b"a"
        pids = child_pids(srv)
        killed = pids[victim.getsockname()[1]]
        os.kill(killed, signal.SIGSTOP)
        victim.sendall(encode_data(2, b"never read"))    # lands in the stopped child's buffer, unread
        time.sleep(0.1)
        os.kill(killed, signal.SIGKILL)
        # Data unread at the death: the kernel answers with RST, not FIN.
        with pytest.raises(ConnectionResetError):
            victim.recv(100)
        victim.close()
        assert wait_for(lambda: srv.stats()["closed"].get("killed") == 1)
        stats = srv.stats()
        assert stats["errors"].get("ChildDied") == 1
        died = [e for e in stats["error_log"] if e["error"] == "ChildDied"]
        assert died[0]["pid"] == killed and "SIGKILL" in died[0]["message"]
        # The other connection and the listener live on.
        assert other.recv(100)[:5] and request(other, 1, b"still here").body == b"still here"
        with socket.create_connection((HOST, srv.port), timeout=TIMEOUT) as late:
            assert request(late, 1, b"new").body == b"new"
        assert stats["delivered"] == 1
        other.close()


def test_behave_reaches_children_already_serving() -> None:
    with running_server("forking") as srv:
        c = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        assert request(c, 1, b"a").body == b"a"
        srv.behave(mode="abort", after=2)     # the child was forked before: it sees it at its next message
        assert request(c, 2, b"b").body == b"b"
        with pytest.raises(ConnectionResetError):
            c.recv(100)
        c.close()
        assert wait_for(lambda: srv.stats()["closed"].get("abort") == 1)


def test_a_session_continues_across_children_at_once() -> None:
    # The second child is forked right after the first one's last ECHO: it must know, from the
    # shared log, what its sibling delivered, without waiting for the parent to hear of it.
    with running_server("forking") as srv:
        sid = os.urandom(16)
        for seq in range(1, 21):
            with socket.create_connection((HOST, srv.port), timeout=TIMEOUT) as c:
                c.sendall(encode_hello_request(sid))
                dec = Decoder()
                while (hello := dec.next_event()) is NEED_DATA:
                    dec.receive_data(c.recv(100))
                assert isinstance(hello, Frame) and hello.seq == seq - 1
                assert request(c, seq, b"m%d" % seq).seq == seq
        assert srv.stats()["sessions"][sid.hex()]["count"] == 20


def test_without_a_state_dir_the_log_lives_in_a_private_dir_removed_at_stop() -> None:
    server = ForkingServer(HOST, 0, control_port=None)
    server.start()
    try:
        private = server.log.path.parent
        assert private.exists()
        with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as c:
            assert request(c, 1, b"x").body == b"x"
    finally:
        server.stop()
    assert not private.exists()


def test_sigkill_with_nothing_unread_ends_the_connection_with_a_fin() -> None:
    with running_server("forking") as srv:
        c = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        c.sendall(encode_data(1, b"x" * 100)[:20])   # a frame cut short: the child reads it and waits
        assert wait_for(lambda: len(srv.stats()["children"]) == 1)
        time.sleep(0.1)
        (pid,) = child_pids(srv).values()
        os.kill(pid, signal.SIGKILL)
        assert c.recv(100) == b""   # everything had been read: the kernel closes with a FIN
        c.close()
        assert wait_for(lambda: srv.stats()["closed"].get("killed") == 1)


def test_linger_abort_of_a_client_costs_only_its_child() -> None:
    with running_server("forking") as srv:
        a = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        b = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
        request(a, 1, b"a")
        request(b, 1, b"b")
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        assert wait_for(lambda: srv.stats()["errors"].get("PeerReset") == 1)
        assert request(b, 2, b"b2").body == b"b2"
        b.close()
