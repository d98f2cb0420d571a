"""The agent's control API over real sockets on 127.0.0.1, driven by AgentClient.

The agent behind the server is the real :class:`lab.inlab.agent.service.Agent` on a fake
command runner (it records iptables argv and starts nothing) and a fake /proc
tree, so these tests need no root, no iptables and no tcpdump. What is under
test is the wire: framing, errors, bounds and deadlines on both sides.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from lab.inlab.agent.api import AgentApiServer
from lab.inlab.agent.commands import Completed
from lab.inlab.agent.service import Agent
from lab.inlab.agent.client import AgentClient, AgentError

HOST = "127.0.0.1"
THREADED = ["python3", "-m", "lab.server", "--impl=threaded", "--port=7000"]
LISTING = ("Chain LAB-FAULTS (2 references)\n    pkts      bytes target     prot opt in     out     source    destination\n"
           "       5      300 DROP       tcp  --  *      *       0.0.0.0/0 0.0.0.0/0  tcp dpt:7000 /* socket-lab:r1 */\n")
PCAP = bytes.fromhex("d4c3b2a1") + bytes(20) + b"\x01" * 70


class FakeTcpdump:
    pid = 4242

    def __init__(self, argv: Sequence[str]) -> None:
        self.path = Path(argv[list(argv).index("-w") + 1])
        self.stderr = io.BytesIO(b"tcpdump: listening on eth0, link-type EN10MB (Ethernet)\n")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("tcpdump", timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self.path.write_bytes(PCAP)
            self.returncode = 0

    def kill(self) -> None:
        self.returncode = -9


class FakeRunner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout: float = 10.0) -> Completed:
        self.calls.append(list(argv))
        if "-L" in argv:
            return Completed(0, LISTING, "")
        return Completed(0, "", "")

    def spawn(self, argv: Sequence[str]) -> FakeTcpdump:
        return FakeTcpdump(argv)

    def forget(self, pid: int) -> None:
        pass


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "7").mkdir(parents=True)
    (root / "7" / "cmdline").write_bytes(b"\0".join(a.encode() for a in THREADED) + b"\0")
    (root / "7" / "stat").write_text("7 (python3) S 1 7 7 0 -1\n")
    return root


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def agent(runner: FakeRunner, proc_root: Path, tmp_path: Path) -> Agent:
    return Agent(runner, proc_root=proc_root, capture_dir=tmp_path, kill=lambda _pid, _sig: None)


def _serve(agent: Agent, **kwargs: float | int) -> AgentApiServer:
    return AgentApiServer(agent, HOST, 0, poll=0.05, **kwargs).start()  # type: ignore[arg-type]


@pytest.fixture
def server(agent: Agent) -> Iterator[AgentApiServer]:
    srv = _serve(agent)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: AgentApiServer) -> AgentClient:
    return AgentClient(HOST, server.port, timeout=2.0)


def _raw(port: int, payload: bytes, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.sendall(payload)
    return sock


class LineReader:
    """Reads reply lines from one socket, keeping whatever arrived after a line for the next call."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def reply(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {self.buf!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


def _read_line(sock: socket.socket) -> dict:
    return LineReader(sock).reply()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the peer closes ``sock`` (recv returns b''); fails if it does not in time."""
    start = time.monotonic()
    sock.settimeout(seconds)
    while True:
        if sock.recv(65536) == b"":
            return time.monotonic() - start


# Request / response ------------------------------------------------------------------------------

def test_ping_round_trip(client: AgentClient) -> None:
    reply = client.ping()
    assert reply["ok"] is True and reply["ops"][:4] == ["ping", "health", "block", "unblock"]


def test_block_counters_unblock_through_the_client(client: AgentClient, runner: FakeRunner) -> None:
    assert client.block(7000, direction="in", syn_only=True) == ["r1"]
    assert ["iptables", "-w", "5", "-A", "LAB-FAULTS", "!", "-d", "127.0.0.0/8", "-p", "tcp", "--dport", "7000",
            "--syn", "-m", "comment", "--comment", "socket-lab:r1", "-j", "DROP"] in runner.calls
    [rule] = client.counters()
    assert (rule["id"], rule["packets"], rule["bytes"], rule["hook"]) == ("r1", 5, 300, "INPUT")
    assert client.unblock() == ["r1"]


def test_processes_signal_and_capture_through_the_client(client: AgentClient) -> None:
    assert [(p["pid"], p["role"], p["state"]) for p in client.processes()] == [(7, "threaded", "S")]
    assert client.signal("threaded", "STOP") == [7]
    client.capture_start("flow", "tcp and port 7000")
    assert client.capture_stop("flow") == PCAP
    assert client.reset()["captures_stopped"] == []


def test_agent_refusal_raises_agent_error_with_its_message(client: AgentClient) -> None:
    with pytest.raises(AgentError, match='field "direction" must be one of "in", "out", "both"') as info:
        client.block(7000, direction="sideways")
    assert info.value.__cause__ is None  # the agent answered: nothing to chain


def test_unknown_op_is_rejected_with_the_known_ones(client: AgentClient) -> None:
    with pytest.raises(AgentError, match=r"unknown op 'reboot'; known ops: ping, health, block, .*reset"):
        client.request("reboot")


def test_several_requests_on_one_connection_are_answered_in_order(server: AgentApiServer) -> None:
    with _raw(server.port, b'{"op": "ping"}\n\n{"op": "nope"}\n{"op": "processes"}\n') as sock:
        reader = LineReader(sock)
        replies = [reader.reply() for _ in range(3)]
    assert [r["ok"] for r in replies] == [True, False, True]
    assert "unknown op 'nope'" in replies[1]["error"] and replies[2]["processes"][0]["pid"] == 7


def test_concurrent_clients_are_all_served(server: AgentApiServer) -> None:
    results: list[bool] = []

    def ping() -> None:
        results.append(AgentClient(HOST, server.port, timeout=5).ping()["ok"])

    threads = [threading.Thread(target=ping) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [True] * 12


# Malformed and oversized requests ----------------------------------------------------------------

def test_malformed_json_is_answered_and_the_connection_stays_usable(server: AgentApiServer) -> None:
    with _raw(server.port, b'{"op": "ping"\n') as sock:
        reply = _read_line(sock)
        assert reply["ok"] is False and "not valid JSON" in reply["error"] and '{"op": "ping"}' in reply["error"]
        sock.sendall(b'{"op": "ping"}\n')
        assert _read_line(sock)["ok"] is True


@pytest.mark.parametrize("payload", [b"[1, 2]\n", b'"ping"\n', b'{"cmd": "ping"}\n', b"\xff\xfe\n"])
def test_a_request_that_is_not_an_op_object_is_rejected(server: AgentApiServer, payload: bytes) -> None:
    with _raw(server.port, payload) as sock:
        reply = _read_line(sock)
    assert reply["ok"] is False and ('"op" string' in reply["error"] or "not valid JSON" in reply["error"])


def test_oversized_request_is_refused_and_the_connection_closed(server: AgentApiServer) -> None:
    # 100 KiB with no newline: more than the 64 KiB bound, which the agent must notice without waiting for one.
    with _raw(server.port, b'{"op": "ping", "pad": "' + b"x" * 100_000) as sock:
        reply = _read_line(sock)
        assert reply["ok"] is False and "larger than 65536 bytes" in reply["error"]
        assert _closed_within(sock, 2.0) < 2.0


def test_oversized_line_with_a_newline_is_refused_too(agent: Agent) -> None:
    srv = _serve(agent, max_request=1024)
    try:
        with _raw(srv.port, b'{"op": "ping", "pad": "' + b"x" * 2000 + b'"}\n') as sock:
            reply = _read_line(sock)
        assert reply["ok"] is False and "larger than 1024 bytes" in reply["error"]
    finally:
        srv.stop()


# Deadlines ---------------------------------------------------------------------------------------

def test_idle_connection_is_closed_by_the_agent(agent: Agent) -> None:
    srv = _serve(agent, idle_timeout=0.3)
    try:
        with socket.create_connection((HOST, srv.port), timeout=5) as sock:
            assert 0.2 < _closed_within(sock, 3.0) < 2.0
    finally:
        srv.stop()


def test_agent_that_never_answers_times_out_the_client() -> None:
    with socket.create_server((HOST, 0)) as silent:  # accepts (via the backlog) and never replies
        client = AgentClient(HOST, silent.getsockname()[1], timeout=0.3)
        start = time.monotonic()
        with pytest.raises(AgentError, match="ping: TimeoutError") as info:
            client.ping()
        assert 0.25 < time.monotonic() - start < 2.0
    assert isinstance(info.value.__cause__, TimeoutError)


def test_unreachable_agent_raises_agent_error_chained_to_the_os_error() -> None:
    with socket.create_server((HOST, 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(AgentError, match=f"agent {HOST}:{port}: ping: ConnectionRefusedError") as info:
        AgentClient(HOST, port, timeout=1).ping()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_agent_that_hangs_up_without_a_reply_raises_agent_error() -> None:
    with socket.create_server((HOST, 0)) as rude:
        def hang_up() -> None:
            conn, _ = rude.accept()
            conn.settimeout(5)
            conn.recv(1024)  # read the request first, so the close is a FIN and not an RST
            conn.close()

        t = threading.Thread(target=hang_up)
        t.start()
        with pytest.raises(AgentError, match="closed the connection") as info:
            AgentClient(HOST, rude.getsockname()[1], timeout=2).ping()
        t.join(5)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_wait_process_gets_its_own_wait_on_top_of_the_client_timeout(client: AgentClient, proc_root: Path) -> None:
    # The process stops after 0.8 s; the client's base timeout is shorter, yet the call succeeds
    # because wait_process extends the reply deadline by the wait it asks for.
    client.timeout = 0.4
    timer = threading.Timer(0.8, lambda: (proc_root / "7" / "stat").write_text("7 (python3) T 1 7 7 0 -1\n"))
    timer.start()
    try:
        start = time.monotonic()
        assert client.wait_process("threaded", "stopped", timeout=3.0) == 7
        assert 0.7 < time.monotonic() - start < 3.0
    finally:
        timer.cancel()


def test_wait_process_timeout_is_reported_by_the_agent(client: AgentClient) -> None:
    with pytest.raises(AgentError, match="threaded not stopped within 0.3 s"):
        client.wait_process("threaded", "stopped", timeout=0.3)


def test_busy_agent_refuses_extra_connections_with_a_reply(agent: Agent) -> None:
    srv = _serve(agent, max_connections=2)
    try:
        idle = [socket.create_connection((HOST, srv.port), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.3)  # let the acceptor hand both to their threads
            with pytest.raises(AgentError, match="agent busy: 2 connections open"):
                AgentClient(HOST, srv.port, timeout=2).ping()
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 3
        while True:  # once those threads see EOF the agent serves again
            try:
                assert AgentClient(HOST, srv.port, timeout=2).ping()["ok"]
                break
            except AgentError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        srv.stop()


def test_stop_returns_promptly_with_idle_connections_open(agent: Agent) -> None:
    srv = _serve(agent)
    with socket.create_connection((HOST, srv.port), timeout=5):
        time.sleep(0.1)
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.5
