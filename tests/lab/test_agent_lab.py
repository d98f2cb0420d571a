"""The agents inject real faults into the running lab, steered from inside the client container.

Everything goes the way a scenario would do it: a Python one-liner runs in
the ``client`` container and talks to the server-agent at ``server:9009``
and to the client-agent at ``127.0.0.1:9009`` through :class:`AgentClient`;
no Docker socket is involved. Each test starts and ends with ``reset`` on
both agents, so a failing test leaves the lab as it found it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.host.topology import Lab

SERVER_AGENT = "server"        # the server-agent shares the server's network namespace
CLIENT_AGENT = "127.0.0.1"     # the client-agent shares the client's
CONNECT_TIMEOUT = 2.0
PCAP_MAGICS = {bytes.fromhex(m) for m in ("d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d")}

_CALL = """
import base64, json, sys
from lab.inlab.agent.client import AgentClient, AgentError
host, method, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    result = getattr(AgentClient(host, timeout=5.0), method)(**kwargs)
except AgentError as exc:
    print(json.dumps({"agent_error": str(exc)}))
    sys.exit(3)
if isinstance(result, bytes):
    result = {"b64": base64.b64encode(result).decode()}
print(json.dumps(result))
"""

_CONNECT = """
import json, socket, sys, time
start = time.monotonic()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    result = "connected"
except TimeoutError:
    result = "timeout"
except OSError as exc:
    result = type(exc).__name__
print(json.dumps({"result": result, "elapsed": time.monotonic() - start}))
"""


def agent(lab: Lab, method: str, host: str = SERVER_AGENT, **kwargs: Any) -> Any:
    """Call one AgentClient method from inside the client container; returns its (JSON) result."""
    res = lab.exec("client", ["python3", "-c", _CALL, host, method, json.dumps(kwargs)], timeout=90)
    assert res.returncode == 0, f"{method}({kwargs}) on {host}: {res.stdout} {res.stderr}"
    return json.loads(res.stdout)


def connect(lab: Lab, port: int = 7000, host: str = "server", timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """One TCP connect from the client container: {"result": connected|timeout|<OSError name>, "elapsed": s}."""
    res = lab.exec("client", ["python3", "-c", _CONNECT, host, str(port), str(timeout)], timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def connect_until_accepted(lab: Lab, port: int, deadline_s: float = 15.0) -> float:
    """Seconds until a connect to server:PORT succeeds (a restarted server needs a moment to bind)."""
    start = time.monotonic()
    while True:
        if connect(lab, port, timeout=1.0)["result"] == "connected":
            return time.monotonic() - start
        assert time.monotonic() - start < deadline_s, f"server:{port} not accepting after {deadline_s} s"
        time.sleep(0.2)


def role_state(lab: Lab, role: str) -> list[str]:
    return [p["state"] for p in agent(lab, "processes") if p["role"] == role]


@pytest.fixture
def clean_lab(lab: Lab) -> Iterator[Lab]:
    for host in (SERVER_AGENT, CLIENT_AGENT):
        agent(lab, "reset", host)
    # A previous test may have restarted or released the servers: wait until both accept again.
    connect_until_accepted(lab, 7000)
    connect_until_accepted(lab, 7100)
    try:
        yield lab
    finally:
        for host in (SERVER_AGENT, CLIENT_AGENT):
            agent(lab, "reset", host)


def test_both_agents_answer_from_the_client_container(clean_lab: Lab) -> None:
    for host in (SERVER_AGENT, CLIENT_AGENT):
        reply = agent(clean_lab, "ping", host)
        assert reply["ok"] is True and "block" in reply["ops"]


def test_blocked_server_port_times_out_counts_drops_and_unblock_restores(clean_lab: Lab) -> None:
    lab = clean_lab
    ids = agent(lab, "block", port=7000, direction="in")
    assert len(ids) == 1

    blocked = connect(lab, 7000)
    assert blocked["result"] == "timeout", blocked
    assert CONNECT_TIMEOUT - 0.1 <= blocked["elapsed"] < CONNECT_TIMEOUT + 1.0, blocked
    # The fault is that port's alone: the selectors server next door still answers.
    assert connect(lab, 7100)["result"] == "connected"

    # The server's own loopback traffic is not the lab network: its healthcheck still connects.
    health = lab.exec("server", ["python3", "-m", "lab.inlab.health", "127.0.0.1:7000"], timeout=30)
    assert health.returncode == 0, health.stderr

    counters = {c["id"]: c for c in agent(lab, "counters")}
    assert counters[ids[0]]["packets"] >= 2, counters  # the SYN and at least its first retry (RTO 1 s)
    assert counters[ids[0]]["bytes"] > 0, counters
    assert counters[ids[0]]["hook"] == "INPUT" and counters[ids[0]]["match"] == "--dport 7000"

    assert agent(lab, "unblock") == ids
    assert agent(lab, "counters") == []
    assert connect(lab, 7000)["result"] == "connected"


_LOSSY = """
import json, socket
timeouts = 0
for _ in range(20):
    try:
        socket.create_connection(("server", 7000), timeout=0.5).close()
    except TimeoutError:
        timeouts += 1
print(json.dumps(timeouts))
"""


def test_random_syn_loss_counts_exactly_the_connects_it_broke(clean_lab: Lab) -> None:
    lab = clean_lab
    [rule_id] = agent(lab, "block", port=7000, direction="in", syn_only=True, probability=0.5)
    res = lab.exec("client", ["python3", "-c", _LOSSY], timeout=60)
    assert res.returncode == 0, res.stderr
    timeouts = json.loads(res.stdout)
    # A 0.5 s connect timeout is shorter than the 1 s SYN retry, so each dropped SYN is one timed-out
    # connect and nothing else. All or none of 20 would happen by chance once in ~500,000 runs.
    assert 0 < timeouts < 20
    [rule] = agent(lab, "counters")
    assert (rule["id"], rule["packets"]) == (rule_id, timeouts)


def test_reject_rst_makes_connect_refused_at_once(clean_lab: Lab) -> None:
    agent(clean_lab, "block", port=7000, direction="in", syn_only=True, action="reject-rst")
    refused = connect(clean_lab, 7000)
    assert refused["result"] == "ConnectionRefusedError", refused
    assert refused["elapsed"] < 0.5, refused


def test_client_side_syn_block_on_peer_port_shows_syn_retransmissions(clean_lab: Lab) -> None:
    lab = clean_lab
    before = agent(lab, "tcp_stats", CLIENT_AGENT)
    ids = agent(lab, "block", CLIENT_AGENT, peer_port=7000, direction="out", syn_only=True)

    assert connect(lab, 7000)["result"] == "timeout"

    after = agent(lab, "tcp_stats", CLIENT_AGENT)
    [rule] = agent(lab, "counters", CLIENT_AGENT)
    assert rule["id"] == ids[0] and rule["hook"] == "OUTPUT" and rule["packets"] >= 2, rule  # SYN + >= 1 retry
    # The client's kernel really retried the SYN: the namespace's own counters say so.
    assert after["tcp_ext"]["TCPSynRetrans"] > before["tcp_ext"]["TCPSynRetrans"]
    assert after["tcp"]["RetransSegs"] > before["tcp"]["RetransSegs"]


def test_stop_and_cont_the_threaded_server(clean_lab: Lab) -> None:
    lab = clean_lab
    [pid] = agent(lab, "signal", target="threaded", signal="STOP")
    assert agent(lab, "wait_process", target="threaded", state="stopped", timeout=5) == pid
    assert role_state(lab, "threaded") == ["T"]
    assert role_state(lab, "selectors")[0] in ("S", "R")  # only the target was stopped

    assert agent(lab, "signal", target="threaded", signal="CONT") == [pid]
    assert agent(lab, "wait_process", target="threaded", state="running", timeout=5) == pid
    assert role_state(lab, "threaded")[0] in ("S", "R")


def test_killed_server_is_restarted_by_the_supervisor_and_accepts_again(clean_lab: Lab) -> None:
    lab = clean_lab
    [old] = agent(lab, "signal", target="threaded", signal="KILL")
    start = time.monotonic()
    new = agent(lab, "wait_process", target="threaded", state="new", not_pid=old, timeout=15)
    assert isinstance(new, int) and new != old
    assert connect_until_accepted(lab, 7000) < 15
    assert [p["pid"] for p in agent(lab, "processes") if p["role"] == "threaded"] == [new]
    print(f"KILL -> new pid after {time.monotonic() - start:.2f} s (including exec round trips)")


def test_supervisor_hold_refuses_and_reset_releases(clean_lab: Lab) -> None:
    lab = clean_lab
    agent(lab, "signal", target="supervisor", signal="USR1")
    assert agent(lab, "wait_process", target="threaded", state="gone", timeout=10) is None
    assert connect(lab, 7000)["result"] == "ConnectionRefusedError"
    reset = agent(lab, "reset")
    assert reset["released"] == 1
    assert agent(lab, "wait_process", target="threaded", state="running", timeout=10)
    connect_until_accepted(lab, 7000)


def test_capture_of_a_connection_holds_packets(clean_lab: Lab) -> None:
    lab = clean_lab
    agent(lab, "capture_start", name="syn-7000", filter="tcp and port 7000")
    assert connect(lab, 7000)["result"] == "connected"
    pcap = base64.b64decode(agent(lab, "capture_stop", name="syn-7000")["b64"])
    assert pcap[:4] in PCAP_MAGICS, pcap[:4].hex()
    assert len(pcap) > 24  # more than the file header: at least the SYN was written
