"""The server-agent and the forking server's children: told apart from their listener, found by
the connection they hold (the kernel's fd table and socket table), signalled one by one; the
socket table and a restart's bind as ops."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.unit.test_agent import FakeProc, error, lab_tree, make_agent, ok

FORKING = ["python3", "-m", "lab.server", "--impl=forking", "--host=0.0.0.0", "--port=7200"]
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
# 172.18.0.3:7200 listening (inode 500); two connections from 172.18.0.5:45678 (inode 501, 13 bytes
# unread) and :45680 (inode 502); a TIME_WAIT one from :45690 (no inode).
TCP = HEADER + "".join([
    "   0: 00000000:1C20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001 0 500 1 0\n",
    "   1: 030012AC:1C20 050012AC:B26E 01 00000000:0000000D 00:00000000 00000000 10001 0 501 1 0\n",
    "   2: 030012AC:1C20 050012AC:B270 01 00000000:00000000 00:00000000 00000000 10001 0 502 1 0\n",
    "   3: 030012AC:1C20 050012AC:B27A 06 00000000:00000000 03:00001771 00000000 0 0 0 3 0\n",
])


def hold(proc: FakeProc, pid: int, *inodes: int) -> None:
    fd = proc.root / str(pid) / "fd"
    fd.mkdir(exist_ok=True)
    for n, inode in enumerate(inodes, start=3):
        os.symlink(f"socket:[{inode}]", fd / str(n))
    os.symlink("pipe:[9]", fd / "0")


@pytest.fixture
def forking(tmp_path: Path) -> FakeProc:
    proc = lab_tree(FakeProc(tmp_path / "proc"))
    proc.add(30, FORKING)
    proc.add(31, FORKING, ppid=30)
    proc.add(32, FORKING, ppid=30)
    hold(proc, 30, 500)
    hold(proc, 31, 501)
    hold(proc, 32, 502)
    (proc.root / "net" / "tcp").write_text(TCP)
    return proc


def test_children_have_a_role_of_their_own_and_their_sockets(tmp_path: Path, forking: FakeProc) -> None:
    listed = ok(make_agent(tmp_path, forking).handle({"op": "processes", "sockets": True}))["processes"]
    by_pid = {p["pid"]: p for p in listed}
    assert (by_pid[30]["role"], by_pid[31]["role"], by_pid[32]["role"]) == ("forking", "forking-child",
                                                                            "forking-child")
    assert by_pid[31]["ppid"] == 30
    assert by_pid[30]["sockets"] == [{"local": "0.0.0.0:7200", "remote": "0.0.0.0:0", "state": "LISTEN",
                                      "rx_queue": 0, "tx_queue": 0}]
    assert by_pid[31]["sockets"] == [{"local": "172.18.0.3:7200", "remote": "172.18.0.5:45678",
                                      "state": "ESTABLISHED", "rx_queue": 13, "tx_queue": 0}]
    plain = ok(make_agent(tmp_path, forking).handle({"op": "processes"}))["processes"]
    assert all("sockets" not in p for p in plain)


def test_a_child_is_signalled_by_the_connection_it_holds(tmp_path: Path, forking: FakeProc) -> None:
    agent = make_agent(tmp_path, forking)
    # Without peer_port "forking" is the listener, never a child.
    assert ok(agent.handle({"op": "wait_process", "target": "forking", "state": "running"}))["pid"] == 30
    ok(agent.handle({"op": "signal", "target": "forking", "signal": "CONT"}))
    assert forking.sent == [(30, signal.SIGCONT)]
    reply = ok(agent.handle({"op": "signal", "target": "forking", "signal": "STOP", "peer_port": 45680}))
    assert reply["pids"] == [32] and forking.sent[-1] == (32, signal.SIGSTOP)


def test_no_child_on_that_port_says_which_peers_it_saw(tmp_path: Path, forking: FakeProc) -> None:
    message = error(make_agent(tmp_path, forking).handle(
        {"op": "signal", "target": "forking", "signal": "KILL", "peer_port": 45690}))
    assert "no forking child holds a connection from port 45690" in message
    assert "31: 172.18.0.5:45678" in message and "32: 172.18.0.5:45680" in message
    assert forking.sent == []


def test_peer_port_only_with_a_server(tmp_path: Path, forking: FakeProc) -> None:
    message = error(make_agent(tmp_path, forking).handle(
        {"op": "signal", "target": "supervisor", "signal": "USR1", "peer_port": 45678}))
    assert '"peer_port"' in message and "'supervisor'" in message


def test_reset_continues_a_stopped_child(tmp_path: Path, forking: FakeProc) -> None:
    forking.set_state(31, "T", ppid=30)
    ok(make_agent(tmp_path, forking).handle({"op": "reset"}))
    assert (31, signal.SIGCONT) in forking.sent


def test_socket_rows_by_port(tmp_path: Path, forking: FakeProc) -> None:
    rows = ok(make_agent(tmp_path, forking).handle({"op": "socket_rows", "port": 45690}))["rows"]
    assert rows == [{"local": "172.18.0.3:7200", "remote": "172.18.0.5:45690", "state": "TIME_WAIT",
                     "rx_queue": 0, "tx_queue": 0}]
    assert len(ok(make_agent(tmp_path, forking).handle({"op": "socket_rows"}))["rows"]) == 4


def test_bind_refuses_the_agent_port_and_unknown_binders(tmp_path: Path, forking: FakeProc) -> None:
    agent = make_agent(tmp_path, forking)
    assert "agent's own control port" in error(agent.handle({"op": "bind", "port": 9009, "binder": "reuseaddr"}))
    assert '"binder"' in error(agent.handle({"op": "bind", "port": 7200, "binder": "reuseport"}))
    assert '"port"' in error(agent.handle({"op": "bind", "port": 80, "binder": "reuseaddr"}))


def test_an_orphaned_child_is_still_a_child_by_its_name(tmp_path: Path, forking: FakeProc) -> None:
    # Its listener was killed and a new one started: the child's parent is now PID 1, but it still
    # calls itself lab-child, so "signal forking KILL" reaches the new listener and not the orphan.
    shutil.rmtree(forking.root / "30")
    shutil.rmtree(forking.root / "32")
    forking.set_state(31, "S", ppid=1, comm="lab-child")
    forking.add(40, FORKING)
    agent = make_agent(tmp_path, forking)
    listed = {p["pid"]: p["role"] for p in ok(agent.handle({"op": "processes"}))["processes"]}
    assert (listed[31], listed[40]) == ("forking-child", "forking")
    assert ok(agent.handle({"op": "signal", "target": "forking", "signal": "KILL"}))["pids"] == [40]
