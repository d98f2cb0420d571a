"""Unit tests for the fault agent's ops: a fake command runner and a fake /proc tree, no root needed.

The fake runner records every iptables argv and starts nothing; its
"tcpdump" is an object that writes a small pcap when it is interrupted. The
fake /proc holds stat and cmdline files laid out like the kernel's, and the
fake kill edits them the way the kernel would (STOP -> T, KILL -> gone).
"""

from __future__ import annotations

import base64
import io
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.inlab.agent import service as agent_mod
from lab.inlab.agent.commands import CommandRunner, Completed
from lab.inlab.agent.iptables import parse_counters
from lab.inlab.agent.procfs import parse_snmp, read_processes
from lab.inlab.agent.service import Agent
from lab.inlab.agent.tcpdump import parse_filter

PCAP = bytes.fromhex("d4c3b2a1") + bytes(20) + bytes(16) + b"\x45" * 40  # header + one record


# Fakes ------------------------------------------------------------------------------------------

class FakeTcpdump:
    """Stands in for a tcpdump Popen: prints 'listening on' (or not), writes PCAP on SIGINT."""

    _next_pid = 5000

    def __init__(self, argv: Sequence[str], *, listening: bool = True, exits_with: int | None = None,
                 stderr: bytes = b"") -> None:
        FakeTcpdump._next_pid += 1
        self.pid = FakeTcpdump._next_pid
        self.argv = list(argv)
        self.path = Path(self.argv[self.argv.index("-w") + 1])
        text = stderr or (b"tcpdump: listening on eth0, link-type EN10MB (Ethernet)\n" if listening else b"")
        self.stderr: io.BytesIO | _Blocking = io.BytesIO(text) if (listening or exits_with is not None) else _Blocking()
        self.returncode = exits_with
        self.signals: list[int] = []
        self.path.write_bytes(PCAP[:24])  # tcpdump writes the file header at once

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.argv, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGINT:
            self.path.write_bytes(PCAP)
            self.returncode = 0
            if isinstance(self.stderr, _Blocking):
                self.stderr.close()

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)
        self.returncode = -9
        if isinstance(self.stderr, _Blocking):
            self.stderr.close()


class _Blocking:
    """A stderr that yields nothing until closed: a tcpdump that never says it listens."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._closed.wait(5)
        return iter(())

    def close(self) -> None:
        self._closed.set()


class FakeRunner:
    """Records iptables argv; answers from ``answers`` (argv prefix -> Completed); spawns FakeTcpdump."""

    def __init__(self, answers: dict[tuple[str, ...], Completed] | None = None, **tcpdump: Any) -> None:
        self.answers = answers or {}
        self.calls: list[list[str]] = []
        self.spawned: list[FakeTcpdump] = []
        self.forgotten: list[int] = []
        self.tcpdump = tcpdump
        self.factory: type[FakeTcpdump] = FakeTcpdump

    def run(self, argv: Sequence[str], timeout: float = 10.0) -> Completed:
        assert timeout <= 30, "every command has a deadline"
        self.calls.append(list(argv))
        best = max((k for k in self.answers if tuple(argv[:len(k)]) == k), key=len, default=None)
        return self.answers[best] if best else Completed(0, "", "")

    def spawn(self, argv: Sequence[str]) -> FakeTcpdump:
        proc = self.factory(argv, **self.tcpdump)
        self.spawned.append(proc)
        return proc

    def forget(self, pid: int) -> None:
        self.forgotten.append(pid)

    def appended(self) -> list[list[str]]:
        """The rule-adding calls, without the 'iptables -w 5' prefix."""
        return [c[3:] for c in self.calls if c[3] == "-A"]


IPT = ["iptables", "-w", "5"]
CHAIN_EXISTS = {(*IPT, "-N"): Completed(1, "", "iptables: Chain already exists.\n")}

SUPERVISOR = ["python3", "-m", "lab.server.supervisor", "--", "python3", "-m", "lab.server", "--impl=threaded",
              "--port=7000", "--", "python3", "-m", "lab.server", "--impl=selectors", "--port=7100"]
THREADED = ["python3", "-m", "lab.server", "--impl=threaded", "--host=0.0.0.0", "--port=7000"]
SELECTORS = ["python3", "-m", "lab.server", "--impl=selectors", "--host=0.0.0.0", "--port=7100"]


class FakeProc:
    """A /proc tree in a temporary directory, and a kill() that changes it like the kernel would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sent: list[tuple[int, int]] = []
        (root / "net").mkdir(parents=True)

    def add(self, pid: int, argv: Sequence[str], state: str = "S", ppid: int = 1, comm: str = "python3") -> None:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        self.set_state(pid, state, ppid, comm)

    def set_state(self, pid: int, state: str, ppid: int = 1, comm: str = "python3") -> None:
        (self.root / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 0 0\n")

    def remove(self, pid: int) -> None:
        for f in (self.root / str(pid)).iterdir():
            f.unlink()
        (self.root / str(pid)).rmdir()

    def kill(self, pid: int, sig: int) -> None:
        if not (self.root / str(pid)).exists():
            raise ProcessLookupError(pid)
        self.sent.append((pid, sig))
        if sig == signal.SIGSTOP:
            self.set_state(pid, "T")
        elif sig == signal.SIGCONT:
            self.set_state(pid, "S")
        elif sig == signal.SIGKILL:
            self.remove(pid)


def lab_tree(proc: FakeProc) -> FakeProc:
    """The server namespace as the server-agent sees it."""
    proc.add(1, SUPERVISOR, ppid=0)
    proc.add(7, THREADED)
    proc.add(8, SELECTORS)
    proc.add(20, ["python3", "-m", "lab.inlab.agent.service"], ppid=0)
    proc.add(21, ["python3", "-c", "print('lab.server --impl=threaded')"], ppid=0)  # mentions it, is not it
    proc.add(2, [], comm="kthreadd")  # kernel threads have an empty cmdline
    return proc


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return lab_tree(FakeProc(tmp_path / "proc"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.on_sleep: list[Any] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


def make_agent(tmp_path: Path, proc: FakeProc, runner: FakeRunner | None = None, clock: FakeClock | None = None,
               **kwargs: Any) -> Agent:
    clock = clock or FakeClock()
    captures = tmp_path / "captures"
    captures.mkdir(exist_ok=True)
    return Agent(runner or FakeRunner(CHAIN_EXISTS), proc_root=proc.root, capture_dir=captures, kill=proc.kill,
                 clock=clock.monotonic, sleep=clock.sleep, **kwargs)


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is True, reply
    return reply


def error(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    return reply["error"]


# block / unblock / counters ----------------------------------------------------------------------

def _rule(match: list[str], comment: str, target: list[str] | None = None, extra: list[str] | None = None) -> list[str]:
    return ["-A", "LAB-FAULTS", "!", "-d", "127.0.0.0/8", "-p", "tcp", *match, *(extra or []), "-m", "comment", "--comment",
            f"socket-lab:{comment}", "-j", *(target or ["DROP"])]


@pytest.mark.parametrize(("request_fields", "expected"), [
    ({"port": 7000, "direction": "in"}, [_rule(["--dport", "7000"], "r1")]),
    ({"port": 7000, "direction": "out"}, [_rule(["--sport", "7000"], "r1")]),
    ({"port": 7000}, [_rule(["--dport", "7000"], "r1"), _rule(["--sport", "7000"], "r2")]),
    ({"peer_port": 7100, "direction": "in"}, [_rule(["--sport", "7100"], "r1")]),
    ({"peer_port": 7100, "direction": "out"}, [_rule(["--dport", "7100"], "r1")]),
    ({"port": 7000, "syn_only": True}, [_rule(["--dport", "7000"], "r1", extra=["--syn"])]),
    ({"peer_port": 7000, "syn_only": True, "direction": "out"}, [_rule(["--dport", "7000"], "r1", extra=["--syn"])]),
    ({"port": 7000, "direction": "in", "action": "reject-rst"},
     [_rule(["--dport", "7000"], "r1", target=["REJECT", "--reject-with", "tcp-reset"])]),
    ({"port": 7000, "direction": "in", "probability": 0.25},
     [_rule(["--dport", "7000"], "r1", extra=["-m", "statistic", "--mode", "random", "--probability", "0.25"])]),
    ({"port": 7000, "direction": "in", "probability": 1}, [_rule(["--dport", "7000"], "r1", extra=[
        "-m", "statistic", "--mode", "random", "--probability", "1.0"])]),
], ids=["port-in", "port-out", "port-both", "peer-in", "peer-out", "syn-port", "syn-peer", "reject-rst",
        "probability", "probability-1"])
def test_block_builds_the_iptables_rules(tmp_path: Path, proc: FakeProc, request_fields: dict[str, Any],
                                         expected: list[list[str]]) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    reply = ok(make_agent(tmp_path, proc, runner).handle({"op": "block", **request_fields}))
    assert runner.appended() == expected
    assert reply["ids"] == [f"r{i + 1}" for i in range(len(expected))]


def test_block_rules_never_match_loopback_traffic(tmp_path: Path, proc: FakeProc) -> None:
    # A host's own 127.0.0.1 traffic (healthchecks, the client-agent API) must neither be dropped nor counted.
    runner = FakeRunner(CHAIN_EXISTS)
    agent = make_agent(tmp_path, proc, runner)
    for fields in ({"port": 7000}, {"peer_port": 7100, "syn_only": True}, {"port": 7000, "probability": 0.5}):
        ok(agent.handle({"op": "block", **fields}))
    assert runner.appended() and all(rule[2:5] == ["!", "-d", "127.0.0.0/8"] for rule in runner.appended())


def test_block_reports_which_hook_each_rule_is_for(tmp_path: Path, proc: FakeProc) -> None:
    reply = ok(make_agent(tmp_path, proc).handle({"op": "block", "peer_port": 7000}))
    assert [(r["hook"], r["match"]) for r in reply["rules"]] == [("INPUT", "--sport 7000"), ("OUTPUT", "--dport 7000")]


def test_chain_is_created_and_hooked_first_when_missing(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({(*IPT, "-C"): Completed(1, "", "iptables: Bad rule\n")})
    ok(make_agent(tmp_path, proc, runner).handle({"op": "block", "port": 7000, "direction": "in"}))
    assert runner.calls[:5] == [
        [*IPT, "-N", "LAB-FAULTS"],
        [*IPT, "-C", "INPUT", "-j", "LAB-FAULTS"], [*IPT, "-I", "INPUT", "1", "-j", "LAB-FAULTS"],
        [*IPT, "-C", "OUTPUT", "-j", "LAB-FAULTS"], [*IPT, "-I", "OUTPUT", "1", "-j", "LAB-FAULTS"],
    ]


def test_existing_chain_and_hooks_are_left_alone(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner(CHAIN_EXISTS)  # -N says "exists", -C finds both hooks
    ok(make_agent(tmp_path, proc, runner).handle({"op": "block", "port": 7000, "direction": "in"}))
    assert not [c for c in runner.calls if "-I" in c]


def test_chain_creation_failure_is_reported(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({(*IPT, "-N"): Completed(4, "", "iptables: Permission denied (you must be root).\n")})
    message = error(make_agent(tmp_path, proc, runner).handle({"op": "block", "port": 7000}))
    assert "Permission denied" in message and "CAP_NET_ADMIN" in message


def test_a_block_that_fails_half_way_is_rolled_back(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({**CHAIN_EXISTS, (*IPT, "-A", "LAB-FAULTS", "!", "-d", "127.0.0.0/8", "-p", "tcp", "--sport"):
                         Completed(2, "", "no such match\n")})
    message = error(make_agent(tmp_path, proc, runner).handle({"op": "block", "port": 7000}))
    assert "no such match" in message
    deletes = [c[3:] for c in runner.calls if c[3] == "-D"]
    assert deletes == [["-D", *_rule(["--dport", "7000"], "r1")[1:]]]


def test_unblock_flushes_the_chain_and_is_idempotent(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    agent = make_agent(tmp_path, proc, runner)
    ids = ok(agent.handle({"op": "block", "port": 7000}))["ids"]
    assert ok(agent.handle({"op": "unblock"}))["removed"] == ids
    assert ok(agent.handle({"op": "unblock"}))["removed"] == []
    assert [c for c in runner.calls if c[3] == "-F"] == [[*IPT, "-F", "LAB-FAULTS"]] * 2


LISTING = """\
Chain LAB-FAULTS (2 references)
    pkts      bytes target     prot opt in     out     source               destination
       3      180 REJECT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:7000 flags:0x17/0x02 statistic mode random probability 0.50000000000 /* socket-lab:r1 */ reject-with tcp-reset
      12     4711 DROP       tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spt:7000 /* socket-lab:r2 */
       9      999 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:22 /* someone else */
"""


def test_counters_are_parsed_from_the_verbose_listing() -> None:
    assert parse_counters(LISTING) == [
        {"id": "r1", "packets": 3, "bytes": 180, "target": "REJECT"},
        {"id": "r2", "packets": 12, "bytes": 4711, "target": "DROP"},
    ]


def test_counters_op_joins_what_each_rule_was_for(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({**CHAIN_EXISTS, (*IPT, "-L", "LAB-FAULTS"): Completed(0, LISTING, "")})
    agent = make_agent(tmp_path, proc, runner)
    ok(agent.handle({"op": "block", "port": 7000}))
    rules = ok(agent.handle({"op": "counters"}))["rules"]
    assert [c for c in runner.calls if c[3] == "-L"] == [[*IPT, "-L", "LAB-FAULTS", "-v", "-x", "-n"]]
    assert rules[1] == {"id": "r2", "packets": 12, "bytes": 4711, "target": "DROP", "hook": "OUTPUT",
                        "match": "--sport 7000", "action": "drop", "syn_only": False, "probability": None}


# Validation --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("request_", "needles"), [
    ({"op": "block", "port": "7000"}, ['"port"', "integer from 1 to 65535", "'7000'"]),
    ({"op": "block", "port": 0}, ['"port"', "1 to 65535"]),
    ({"op": "block", "port": 70000}, ['"port"', "1 to 65535"]),
    ({"op": "block", "port": True}, ['"port"', "integer"]),
    ({"op": "block", "port": 7000.0}, ['"port"', "integer"]),
    ({"op": "block", "port": 7000, "direction": "sideways"}, ['"direction"', '"in", "out", "both"', "sideways"]),
    ({"op": "block", "port": 7000, "action": "reject"}, ['"action"', '"drop", "reject-rst"']),
    ({"op": "block", "port": 7000, "probability": 0}, ['"probability"', "0 < x <= 1"]),
    ({"op": "block", "port": 7000, "probability": 1.5}, ['"probability"', "0 < x <= 1"]),
    ({"op": "block", "port": 7000, "probability": "half"}, ['"probability"', "number"]),
    ({"op": "block", "port": 7000, "syn_only": "yes"}, ['"syn_only"', "true or false"]),
    ({"op": "block", "port": 7000, "peer_port": 7000}, ['"port"', '"peer_port"', "exactly one"]),
    ({"op": "block"}, ['"port"', '"peer_port"', "exactly one"]),
    ({"op": "block", "port": 7000, "syn_only": True, "direction": "out"}, ["syn_only", '"in" or "both"']),
    ({"op": "block", "peer_port": 7000, "syn_only": True, "direction": "in"}, ["syn_only", '"out" or "both"']),
    ({"op": "block", "port": 9009}, ["9009", "control port"]),
    ({"op": "block", "prot": 7000}, ["'prot'", "accepted fields: port, peer_port, direction"]),
    ({"op": "ping", "extra": 1}, ["'extra'", "accepted fields: none"]),
    ({"op": "signal", "target": "nginx", "signal": "KILL"}, ['"target"', '"threaded", "selectors", "forking", "supervisor"']),
    ({"op": "signal", "target": "threaded", "signal": "HUP"},
     ['"signal"', '"KILL", "STOP", "CONT", "TERM", "USR1", "USR2"']),
    ({"op": "signal", "target": "threaded"}, ['"signal"', "required"]),
    ({"op": "signal", "target": "supervisor", "signal": "KILL"}, ["PID 1", '"TERM", "USR1", "USR2"']),
    ({"op": "wait_process", "target": "threaded", "state": "running", "timeout": 31},
     ['"timeout"', "0 < x <= 30"]),
    ({"op": "wait_process", "target": "threaded", "state": "alive"},
     ['"state"', '"running", "stopped", "gone", "new"']),
    ({"op": "wait_process", "target": "threaded", "state": "new"}, ['"not_pid"', '"new"']),
    ({"op": "wait_process", "target": "threaded", "state": "running", "not_pid": 7}, ['"not_pid"', '"new"']),
    ({"op": "capture_start", "name": "Bad_Name"}, ['"name"', "[a-z0-9-]{1,32}"]),
    ({"op": "capture_start", "name": "x" * 33}, ['"name"', "[a-z0-9-]{1,32}"]),
    ({"op": "capture_start", "name": "../etc/passwd"}, ['"name"', "[a-z0-9-]{1,32}"]),
    ({"op": "capture_start"}, ['"name"', "required"]),
    ({"op": "capture_stop", "name": 3}, ['"name"', "string"]),
], ids=lambda v: str(v)[:60] if isinstance(v, dict) else None)
def test_bad_requests_name_the_field_and_what_is_accepted(tmp_path: Path, proc: FakeProc, request_: dict[str, Any],
                                                          needles: list[str]) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    message = error(make_agent(tmp_path, proc, runner).handle(request_))
    for needle in needles:
        assert needle in message, (needle, message)
    assert runner.appended() == [] and runner.spawned == [] and proc.sent == []


def test_unknown_op_lists_the_known_ones(tmp_path: Path, proc: FakeProc) -> None:
    message = error(make_agent(tmp_path, proc).handle({"op": "format_disk"}))
    assert "'format_disk'" in message
    assert "known ops: ping, health, block, unblock, counters, signal, processes, wait_process, capture_start, " \
           "capture_stop, tcp_stats, reset" in message


@pytest.mark.parametrize("request_", [[], "ping", {"cmd": "ping"}, {"op": 3}, None])
def test_a_request_must_be_an_object_with_an_op(tmp_path: Path, proc: FakeProc, request_: Any) -> None:
    assert '"op" string' in error(make_agent(tmp_path, proc).handle(request_))


# Capture filter grammar --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "tokens"), [
    ("tcp", ["tcp"]),
    ("port 7000", ["port", "7000"]),
    ("tcp and port 7000", ["tcp", "and", "port", "7000"]),
    ("tcp and port 7000 or icmp", ["tcp", "and", "port", "7000", "or", "icmp"]),   # a router's ICMP errors too
    ("  tcp   and  port 7000 ", ["tcp", "and", "port", "7000"]),
    ("host server or host 172.20.0.3", ["host", "server", "or", "host", "172.20.0.3"]),
    ("tcp and not src port 9009 and dst host socket-lab-toxiproxy-1.lab",
     ["tcp", "and", "not", "src", "port", "9009", "and", "dst", "host", "socket-lab-toxiproxy-1.lab"]),
])
def test_filter_grammar_accepts(text: str, tokens: list[str]) -> None:
    assert parse_filter(text) == tokens


@pytest.mark.parametrize("text", [
    "; rm -rf /", "tcp; rm -rf /", "tcp ; rm -rf /", "-w /etc/x", "tcp -w /etc/x", "port 7000 -z /bin/sh",
    "tcp and -w /etc/x", "host $(id)", "host `reboot`", "port 7000|sh", "tcp && port 1", "(tcp)",
    "udp", "icmp6", "icmp and", "tcp and", "and tcp", "not", "port", "port 0", "port 65536", "port 7e3", "port -1",
    "host", "host and", "host 10.0.0.256", "host Server", "host -server", "host server.", "",
    "tcp\nport 1", "x" * 300,
])
def test_filter_grammar_rejects_anything_else(tmp_path: Path, proc: FakeProc, text: str) -> None:
    runner = FakeRunner()
    message = error(make_agent(tmp_path, proc, runner).handle({"op": "capture_start", "name": "c", "filter": text}))
    assert '"filter"' in message
    assert runner.spawned == []


def test_filter_error_explains_the_grammar(tmp_path: Path, proc: FakeProc) -> None:
    message = error(make_agent(tmp_path, proc).handle({"op": "capture_start", "name": "c", "filter": "-w /etc/x"}))
    assert "unexpected '-w'" in message and "[src|dst] port N" in message and "host NAME-or-IPv4" in message


# Captures ----------------------------------------------------------------------------------------

def test_capture_runs_tcpdump_and_returns_the_pcap(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner()
    agent = make_agent(tmp_path, proc, runner)
    started = ok(agent.handle({"op": "capture_start", "name": "syn-7000", "filter": "tcp and port 7000"}))
    path = tmp_path / "captures" / "syn-7000.pcap"
    [tcpdump] = runner.spawned
    assert tcpdump.argv == ["tcpdump", "-U", "--immediate-mode", "-s", "65600", "-B", "131072", "-i", "eth0", "-w", str(path), "-Z", "root",
                            "tcp", "and", "port", "7000"]
    assert started["pid"] == tcpdump.pid and started["filter"] == "tcp and port 7000"

    stopped = ok(agent.handle({"op": "capture_stop", "name": "syn-7000"}))
    assert tcpdump.signals == [signal.SIGINT]
    assert base64.b64decode(stopped["pcap"]) == PCAP and stopped["size"] == len(PCAP)
    assert stopped["auto_stopped"] is False
    assert not path.exists() and runner.forgotten == [tcpdump.pid]


def test_capture_stop_waits_for_tcpdump_to_catch_up_before_interrupting_it(tmp_path: Path, proc: FakeProc) -> None:
    class Lagging(FakeTcpdump):
        """Still writing packets it already received when capture_stop is called."""

        def send_signal(self, sig: int) -> None:
            self.signalled_at = time.monotonic()
            self.returncode = 0

    runner = FakeRunner()
    runner.factory = Lagging
    # Writes come every 40 ms; a 0.4 s quiet period leaves a wide margin on a loaded machine.
    agent = make_agent(tmp_path, proc, runner, capture_quiet=0.4)
    ok(agent.handle({"op": "capture_start", "name": "c"}))
    [tcpdump] = runner.spawned

    def catch_up() -> None:
        for _ in range(8):
            with tcpdump.path.open("ab") as f:
                f.write(b"\x01" * 90)
            time.sleep(0.04)
        tcpdump.caught_up_at = time.monotonic()  # type: ignore[attr-defined]

    writer = threading.Thread(target=catch_up)
    writer.start()
    stopped = ok(agent.handle({"op": "capture_stop", "name": "c"}))
    writer.join()
    assert tcpdump.signalled_at >= tcpdump.caught_up_at  # type: ignore[attr-defined]
    assert stopped["size"] == 24 + 8 * 90


def test_capture_names_are_unique_and_captures_limited(tmp_path: Path, proc: FakeProc) -> None:
    agent = make_agent(tmp_path, proc)
    for i in range(agent_mod.MAX_CAPTURES):
        ok(agent.handle({"op": "capture_start", "name": f"c{i}"}))
    assert "exists" in error(agent.handle({"op": "capture_start", "name": "c0"}))
    assert f"at most {agent_mod.MAX_CAPTURES}" in error(agent.handle({"op": "capture_start", "name": "more"}))
    ok(agent.handle({"op": "capture_stop", "name": "c0"}))
    ok(agent.handle({"op": "capture_start", "name": "more"}))
    agent.stop_captures()


def test_stopping_an_unknown_capture_lists_the_running_ones(tmp_path: Path, proc: FakeProc) -> None:
    agent = make_agent(tmp_path, proc)
    ok(agent.handle({"op": "capture_start", "name": "one"}))
    message = error(agent.handle({"op": "capture_stop", "name": "two"}))
    assert "'two'" in message and "captures: one" in message
    agent.stop_captures()


def test_tcpdump_that_dies_at_start_is_reported_with_its_words(tmp_path: Path, proc: FakeProc) -> None:
    words = b"tcpdump: Couldn't change to 'root' uid=0 gid=0: Operation not permitted\n"
    agent = make_agent(tmp_path, proc, FakeRunner(listening=False, exits_with=1, stderr=words))
    message = error(agent.handle({"op": "capture_start", "name": "c"}))
    assert "exited with 1 before listening" in message and "Operation not permitted" in message
    assert not (tmp_path / "captures" / "c.pcap").exists()
    assert "no capture named 'c'" in error(agent.handle({"op": "capture_stop", "name": "c"}))


def test_tcpdump_that_never_listens_is_stopped_after_a_bounded_wait(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner(listening=False)
    agent = Agent(runner, proc_root=proc.root, capture_dir=tmp_path, kill=proc.kill, capture_ready_timeout=0.2)
    start = time.monotonic()
    message = error(agent.handle({"op": "capture_start", "name": "c"}))
    assert time.monotonic() - start < 2
    assert "did not report 'listening on' within 0.2 s" in message
    assert runner.spawned[0].signals == [signal.SIGINT]
    assert not (tmp_path / "c.pcap").exists()


def test_a_forgotten_capture_stops_itself_and_can_still_be_collected(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner()
    agent = Agent(runner, proc_root=proc.root, capture_dir=tmp_path, kill=proc.kill, capture_limit=0.05)
    ok(agent.handle({"op": "capture_start", "name": "c"}))
    deadline = time.monotonic() + 5
    while not runner.spawned[0].signals and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.spawned[0].signals == [signal.SIGINT]
    stopped = ok(agent.handle({"op": "capture_stop", "name": "c"}))
    assert stopped["auto_stopped"] is True and base64.b64decode(stopped["pcap"]) == PCAP


# Processes ---------------------------------------------------------------------------------------

def test_processes_lists_the_lab_processes_with_their_state(tmp_path: Path, proc: FakeProc) -> None:
    proc.set_state(7, "T")
    listed = ok(make_agent(tmp_path, proc).handle({"op": "processes"}))["processes"]
    assert [(p["pid"], p["role"], p["state"]) for p in listed] == [
        (1, "supervisor", "S"), (7, "threaded", "T"), (8, "selectors", "S")]
    assert listed[1]["cmdline"] == " ".join(THREADED)


def test_stat_with_odd_command_names_is_parsed(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(42, THREADED, state="R", ppid=9, comm="a ) b (c")
    [info] = read_processes(proc.root)
    assert (info.pid, info.ppid, info.state, info.role) == (42, 9, "R", "threaded")


def test_a_supervisor_not_at_pid_1_is_not_the_supervisor(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, ["python3", "-m", "lab.inlab.agent.service"])  # the client-agent's own namespace
    proc.add(5, SUPERVISOR)
    agent = make_agent(tmp_path, proc)
    assert "no supervisor process" in error(agent.handle({"op": "signal", "target": "supervisor", "signal": "USR1"}))
    assert proc.sent == []


@pytest.mark.parametrize(("target", "name", "pid", "signum"), [
    ("threaded", "STOP", 7, signal.SIGSTOP), ("selectors", "KILL", 8, signal.SIGKILL),
    ("threaded", "CONT", 7, signal.SIGCONT), ("supervisor", "USR1", 1, signal.SIGUSR1),
    ("supervisor", "USR2", 1, signal.SIGUSR2), ("supervisor", "TERM", 1, signal.SIGTERM),
])
def test_signal_finds_the_process_by_cmdline(tmp_path: Path, proc: FakeProc, target: str, name: str, pid: int,
                                             signum: int) -> None:
    reply = ok(make_agent(tmp_path, proc).handle({"op": "signal", "target": target, "signal": name}))
    assert reply["pids"] == [pid]
    assert proc.sent == [(pid, signum)]


def test_signal_without_a_target_process_says_what_it_saw(tmp_path: Path, proc: FakeProc) -> None:
    proc.remove(7)
    message = error(make_agent(tmp_path, proc).handle({"op": "signal", "target": "threaded", "signal": "KILL"}))
    assert "no threaded process" in message and "8 selectors (S)" in message


def test_signal_refused_by_the_kernel_is_reported(tmp_path: Path, proc: FakeProc) -> None:
    def refuse(_pid: int, _sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    agent = Agent(FakeRunner(), proc_root=proc.root, capture_dir=tmp_path, kill=refuse)
    message = error(agent.handle({"op": "signal", "target": "threaded", "signal": "KILL"}))
    assert "CAP_KILL" in message


def test_wait_process_stopped_and_running(tmp_path: Path, proc: FakeProc) -> None:
    agent = make_agent(tmp_path, proc)
    ok(agent.handle({"op": "signal", "target": "threaded", "signal": "STOP"}))
    assert ok(agent.handle({"op": "wait_process", "target": "threaded", "state": "stopped"}))["pid"] == 7
    ok(agent.handle({"op": "signal", "target": "threaded", "signal": "CONT"}))
    reply = ok(agent.handle({"op": "wait_process", "target": "threaded", "state": "running"}))
    assert (reply["pid"], reply["state"]) == (7, "S")


def test_wait_process_new_waits_for_the_restarted_server(tmp_path: Path, proc: FakeProc) -> None:
    clock = FakeClock()
    agent = make_agent(tmp_path, proc, clock=clock)
    ok(agent.handle({"op": "signal", "target": "threaded", "signal": "KILL"}))
    # The supervisor notices and restarts it a few polls later.
    clock.on_sleep = [lambda: None, lambda: None, lambda: proc.add(31, THREADED)]
    reply = ok(agent.handle({"op": "wait_process", "target": "threaded", "state": "new", "not_pid": 7,
                             "timeout": 5}))
    assert reply["pid"] == 31
    assert reply["waited"] == pytest.approx(3 * agent_mod.WAIT_POLL)


def test_wait_process_gone_counts_a_zombie_as_gone(tmp_path: Path, proc: FakeProc) -> None:
    proc.set_state(7, "Z")
    reply = ok(make_agent(tmp_path, proc).handle({"op": "wait_process", "target": "threaded", "state": "gone"}))
    assert reply["pid"] is None


def test_wait_process_gives_up_at_its_timeout(tmp_path: Path, proc: FakeProc) -> None:
    clock = FakeClock()
    agent = make_agent(tmp_path, proc, clock=clock)
    message = error(agent.handle({"op": "wait_process", "target": "threaded", "state": "stopped", "timeout": 2}))
    assert "threaded not stopped within 2 s" in message and "7 threaded (S)" in message
    assert 2.0 <= clock.now - 100.0 < 2.0 + 2 * agent_mod.WAIT_POLL


# tcp_stats ---------------------------------------------------------------------------------------

SNMP = """\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 2
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 12 9 3 1 2 480 470 7 0 5 0
Udp: InDatagrams NoPorts
Udp: 0 0
"""
NETSTAT = """\
TcpExt: SyncookiesSent TCPTimeouts TCPKeepAlive TCPSynRetrans
TcpExt: 0 4 11 6
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
MPTcpExt: MPCapableSYNRX
MPTcpExt: 0
"""


def test_tcp_stats_reads_the_namespace_counters(tmp_path: Path, proc: FakeProc) -> None:
    (proc.root / "net" / "snmp").write_text(SNMP)
    (proc.root / "net" / "netstat").write_text(NETSTAT)
    reply = ok(make_agent(tmp_path, proc).handle({"op": "tcp_stats"}))
    assert reply["tcp"]["RetransSegs"] == 7 and reply["tcp"]["InSegs"] == 480 and reply["tcp"]["MaxConn"] == -1
    assert reply["tcp_ext"] == {"SyncookiesSent": 0, "TCPTimeouts": 4, "TCPKeepAlive": 11, "TCPSynRetrans": 6}


def test_parse_snmp_ignores_other_protocols() -> None:
    assert set(parse_snmp(SNMP, "Udp")) == {"InDatagrams", "NoPorts"}
    assert parse_snmp(NETSTAT, "TcpExt")["TCPTimeouts"] == 4


def test_tcp_stats_without_proc_net_is_an_error(tmp_path: Path, proc: FakeProc) -> None:
    assert "cannot read" in error(make_agent(tmp_path, proc).handle({"op": "tcp_stats"}))


# reset -------------------------------------------------------------------------------------------

def test_reset_undoes_every_fault(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    agent = make_agent(tmp_path, proc, runner)
    ids = ok(agent.handle({"op": "block", "port": 7000}))["ids"]
    ok(agent.handle({"op": "signal", "target": "threaded", "signal": "STOP"}))
    ok(agent.handle({"op": "capture_start", "name": "c"}))
    proc.sent.clear()

    reply = ok(agent.handle({"op": "reset"}))
    assert reply == {"ok": True, "removed": ids, "continued": [7], "released": 1, "captures_stopped": ["c"],
                     "ports_released": {"listeners": 0, "connections": 0, "holders": 0, "elapsed_s": 0.0}}
    assert [*IPT, "-F", "LAB-FAULTS"] in runner.calls
    assert proc.sent == [(1, signal.SIGUSR2), (7, signal.SIGCONT)]
    assert runner.spawned[0].signals == [signal.SIGINT]
    assert list((tmp_path / "captures").iterdir()) == []
    # Nothing left to undo: a second reset does no harm.
    assert ok(agent.handle({"op": "reset"}))["continued"] == []


def test_reset_does_every_step_even_when_iptables_fails(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({**CHAIN_EXISTS, (*IPT, "-F"): Completed(1, "", "iptables: No chain by that name.\n")})
    proc.set_state(8, "T")
    message = error(make_agent(tmp_path, proc, runner).handle({"op": "reset"}))
    assert "No chain by that name" in message
    assert (8, signal.SIGCONT) in proc.sent and (1, signal.SIGUSR2) in proc.sent


def test_reset_in_a_namespace_without_lab_processes(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, ["python3", "-m", "lab.inlab.agent.service"])  # the client-agent sees only itself
    reply = ok(make_agent(tmp_path, proc).handle({"op": "reset"}))
    assert (reply["continued"], reply["released"]) == ([], None) and proc.sent == []


# The real command runner (local, harmless commands only) -----------------------------------------

def test_command_runner_reports_exit_output_and_missing_commands() -> None:
    runner = CommandRunner()
    assert runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"]) == Completed(3, "out\n", "err\n")
    assert runner.run(["no-such-command-for-the-agent"]).returncode == 127


def test_command_runner_enforces_its_deadline() -> None:
    start = time.monotonic()
    res = CommandRunner().run(["sleep", "10"], timeout=0.2)
    assert res.returncode == 124 and "no answer within 0.2 s" in res.stderr
    assert time.monotonic() - start < 2


# dns (the client-agent's resolver faults and counters) ---------------------------------------------

def _dns_rule(rid: str, match: list[str], target: list[str] | None = None) -> list[str]:
    return ["-A", "LAB-FAULTS", "-i", "lo", *match, "-m", "comment", "--comment", f"socket-lab:{rid}",
            *(["-j", *target] if target else [])]


@pytest.mark.parametrize(("request_fields", "expected"), [
    ({"action": "drop"}, [_dns_rule("r1", ["-d", "127.0.0.11"], ["DROP"])]),
    ({"action": "reject"}, [_dns_rule("r1", ["-d", "127.0.0.11"], ["REJECT", "--reject-with", "icmp-port-unreachable"])]),
    ({"action": "count"}, [_dns_rule("r1", ["-d", "127.0.0.11"]),
                           _dns_rule("r2", ["-s", "127.0.0.11", "!", "-p", "icmp"]),
                           _dns_rule("r3", ["-s", "127.0.0.11", "-p", "icmp"])]),
    ({"action": "drop", "address": "127.0.0.53"}, [_dns_rule("r1", ["-d", "127.0.0.53"], ["DROP"])]),
    ({"action": "count", "address": "127.255.0.1"}, [_dns_rule("r1", ["-d", "127.255.0.1"]),
                                                     _dns_rule("r2", ["-s", "127.255.0.1", "!", "-p", "icmp"]),
                                                     _dns_rule("r3", ["-s", "127.255.0.1", "-p", "icmp"])]),
], ids=["drop", "reject", "count", "drop-other-address", "count-other-address"])
def test_dns_builds_the_iptables_rules(tmp_path: Path, proc: FakeProc, request_fields: dict[str, Any],
                                       expected: list[list[str]]) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    reply = ok(make_agent(tmp_path, proc, runner).handle({"op": "dns", **request_fields}))
    assert runner.appended() == expected
    assert reply["ids"] == [f"r{i + 1}" for i in range(len(expected))]
    # Every call is iptables with its lock wait, and LAB-FAULTS is ensured before the rules go in.
    assert all(c[:3] == IPT for c in runner.calls)
    assert runner.calls[0] == [*IPT, "-N", "LAB-FAULTS"]


def test_dns_rules_say_what_each_one_is_for(tmp_path: Path, proc: FakeProc) -> None:
    agent = make_agent(tmp_path, proc)
    counts = ok(agent.handle({"op": "dns", "action": "count"}))
    fault = ok(agent.handle({"op": "dns", "action": "reject"}))
    assert counts == {"ok": True, "ids": ["r1", "r2", "r3"], "rules": [
        {"id": "r1", "hook": "INPUT", "match": "dns queries 127.0.0.11", "action": "queries", "dns": "queries",
         "address": "127.0.0.11"},
        {"id": "r2", "hook": "INPUT", "match": "dns answers 127.0.0.11", "action": "answers", "dns": "answers",
         "address": "127.0.0.11"},
        {"id": "r3", "hook": "INPUT", "match": "dns errors 127.0.0.11", "action": "errors", "dns": "errors",
         "address": "127.0.0.11"}]}
    assert fault == {"ok": True, "ids": ["r4"], "rules": [
        {"id": "r4", "hook": "INPUT", "match": "dns reject 127.0.0.11", "action": "reject", "dns": "reject",
         "address": "127.0.0.11"}]}


def test_dns_rules_match_only_on_the_way_in_over_loopback(tmp_path: Path, proc: FakeProc) -> None:
    # In OUTPUT a packet has no input interface: "-i lo" keeps every dns rule out of the OUTPUT hook.
    runner = FakeRunner(CHAIN_EXISTS)
    agent = make_agent(tmp_path, proc, runner)
    for action in ("drop", "reject", "count"):
        ok(agent.handle({"op": "dns", "action": action}))
    assert len(runner.appended()) == 5
    assert all(rule[2:4] == ["-i", "lo"] and "-o" not in rule and "tcp" not in rule for rule in runner.appended())


@pytest.mark.parametrize(("request_", "needles"), [
    ({"op": "dns"}, ['dns: field "action" is required']),
    ({"op": "dns", "action": "block"}, ['dns: field "action" must be one of "drop", "reject", "count"; got \'block\'']),
    ({"op": "dns", "action": "DROP"}, ['field "action" must be one of "drop", "reject", "count"', "'DROP'"]),
    ({"op": "dns", "action": "reject-rst"}, ['"drop", "reject", "count"', "'reject-rst'"]),
    ({"op": "dns", "action": 1}, ['"action"', '"drop", "reject", "count"', "got 1"]),
    ({"op": "dns", "action": "drop", "address": 11}, ['dns: field "address" must be a string; got 11']),
    ({"op": "dns", "action": "drop", "address": "8.8.8.8"},
     ['dns: "address" must be a loopback IPv4 address (127.x.y.z) where a resolver answers; got \'8.8.8.8\'']),
    ({"op": "dns", "action": "drop", "address": "127.0.0.256"}, ['"address"', "127.x.y.z", "'127.0.0.256'"]),
    ({"op": "dns", "action": "drop", "address": "127.0.0"}, ['"address"', "127.x.y.z", "'127.0.0'"]),
    ({"op": "dns", "action": "drop", "address": "127.0.0.11/8"}, ['"address"', "127.x.y.z"]),
    ({"op": "dns", "action": "drop", "address": "127.0.0.011"}, ['"address"', "127.x.y.z"]),
    ({"op": "dns", "action": "drop", "address": "127.0.0.11 -j ACCEPT"}, ['"address"', "127.x.y.z"]),
    ({"op": "dns", "action": "drop", "address": "127.0.0.11\n"}, ['"address"', "127.x.y.z"]),
    ({"op": "dns", "action": "drop", "address": "::1"}, ['"address"', "127.x.y.z"]),
    ({"op": "dns", "action": "drop", "port": 53}, ["'port'", "accepted fields: action, address"]),
], ids=lambda v: str(v)[:70] if isinstance(v, dict) else None)
def test_dns_bad_requests_name_the_field_and_what_is_accepted(tmp_path: Path, proc: FakeProc,
                                                              request_: dict[str, Any], needles: list[str]) -> None:
    runner = FakeRunner(CHAIN_EXISTS)
    message = error(make_agent(tmp_path, proc, runner).handle(request_))
    for needle in needles:
        assert needle in message, (needle, message)
    assert runner.calls == []      # refused before any iptables call, the chain included


def test_dns_plan_refuses_an_unknown_action_itself() -> None:
    # The op's own field check comes first; plan_dns still refuses on its own (its other callers).
    from lab.inlab.agent.iptables import plan_dns
    from lab.inlab.agent.requests import BadRequest

    assert plan_dns("count", "127.0.0.11") == [("queries", "127.0.0.11"), ("answers", "127.0.0.11"),
                                               ("errors", "127.0.0.11")]
    assert plan_dns("reject", "127.1.2.3") == [("reject", "127.1.2.3")]
    with pytest.raises(BadRequest, match=r"^dns: \"action\" must be one of drop, reject, count; got 'accept'$"):
        plan_dns("accept", "127.0.0.11")


def test_a_dns_count_that_fails_half_way_is_rolled_back(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({**CHAIN_EXISTS, (*IPT, "-A", "LAB-FAULTS", "-i", "lo", "-s", "127.0.0.11", "-p"):
                         Completed(2, "", "iptables: No chain/target/match by that name.\n")})
    agent = make_agent(tmp_path, proc, runner)
    message = error(agent.handle({"op": "dns", "action": "count"}))
    assert "No chain/target/match by that name" in message
    deletes = [c[3:] for c in runner.calls if c[3] == "-D"]
    assert deletes == [["-D", *_dns_rule("r1", ["-d", "127.0.0.11"])[1:]],
                       ["-D", *_dns_rule("r2", ["-s", "127.0.0.11", "!", "-p", "icmp"])[1:]]]
    assert ok(agent.handle({"op": "unblock"}))["removed"] == []   # none of the three is remembered


def test_reset_undoes_the_dns_rules(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, ["python3", "-m", "lab.inlab.agent.service"])  # the client-agent's namespace
    runner = FakeRunner(CHAIN_EXISTS)
    agent = make_agent(tmp_path, proc, runner)
    counting = ok(agent.handle({"op": "dns", "action": "count"}))["ids"]
    fault = ok(agent.handle({"op": "dns", "action": "drop"}))["ids"]
    assert (counting, fault) == (["r1", "r2", "r3"], ["r4"])
    reply = ok(agent.handle({"op": "reset"}))
    assert reply == {"ok": True, "removed": ["r1", "r2", "r3", "r4"], "continued": [], "released": None,
                     "captures_stopped": [],
                     "ports_released": {"listeners": 0, "connections": 0, "holders": 0, "elapsed_s": 0.0}}
    assert [c for c in runner.calls if c[3] == "-F"] == [[*IPT, "-F", "LAB-FAULTS"]]
    assert ok(agent.handle({"op": "unblock"}))["removed"] == []


DNS_LISTING = """\
Chain LAB-FAULTS (2 references)
    pkts      bytes target     prot opt in     out     source               destination
       6      372            all  --  lo     *       0.0.0.0/0            127.0.0.11           /* socket-lab:r1 */
       4      520            !icmp --  lo     *       127.0.0.11           0.0.0.0/0            /* socket-lab:r2 */
       2      180            icmp --  lo     *       127.0.0.11           0.0.0.0/0            /* socket-lab:r3 */
       2      124 REJECT     all  --  lo     *       0.0.0.0/0            127.0.0.11           /* socket-lab:r4 */ reject-with icmp-port-unreachable
"""


def test_dns_counters_are_read_back_with_what_each_rule_counts(tmp_path: Path, proc: FakeProc) -> None:
    runner = FakeRunner({**CHAIN_EXISTS, (*IPT, "-L", "LAB-FAULTS"): Completed(0, DNS_LISTING, "")})
    agent = make_agent(tmp_path, proc, runner)
    ok(agent.handle({"op": "dns", "action": "count"}))
    ok(agent.handle({"op": "dns", "action": "reject"}))
    rules = ok(agent.handle({"op": "counters"}))["rules"]
    assert [(r["id"], r["dns"], r["packets"], r["bytes"], r["hook"]) for r in rules] == [
        ("r1", "queries", 6, 372, "INPUT"), ("r2", "answers", 4, 520, "INPUT"), ("r3", "errors", 2, 180, "INPUT"),
        ("r4", "reject", 2, 124, "INPUT")]
    assert rules[3] == {"id": "r4", "packets": 2, "bytes": 124, "target": "REJECT", "hook": "INPUT",
                        "match": "dns reject 127.0.0.11", "action": "reject", "dns": "reject",
                        "address": "127.0.0.11"}


def test_the_dns_op_is_known_to_the_agent(tmp_path: Path, proc: FakeProc) -> None:
    assert "dns" in ok(make_agent(tmp_path, proc).handle({"op": "ping"}))["ops"]
    assert ", dns" in error(make_agent(tmp_path, proc).handle({"op": "nslookup"}))


def test_the_agent_client_sends_the_dns_request_and_returns_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.inlab.agent.client import AgentClient

    sent: list[tuple[str, dict[str, Any]]] = []

    def request(self: AgentClient, op: str, **fields: Any) -> dict[str, Any]:
        sent.append((op, fields))
        return {"ok": True, "ids": ["r7"], "rules": []}

    monkeypatch.setattr(AgentClient, "request", request)
    client = AgentClient("127.0.0.1")
    assert client.dns("drop") == ["r7"]
    assert client.dns("count", address="127.0.0.53") == ["r7"]
    assert sent == [("dns", {"action": "drop", "address": "127.0.0.11"}),
                    ("dns", {"action": "count", "address": "127.0.0.53"})]


ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
LISTEN_7000 = "   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 4242 1\n"


def test_health_reports_a_default_route_and_a_port_nobody_listens_on(tmp_path: Path, proc: FakeProc) -> None:
    (proc.root / "net" / "route").write_text(
        ROUTE_HEADER + "eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    (proc.root / "net" / "tcp").write_text(TCP_HEADER + LISTEN_7000)
    reply = ok(make_agent(tmp_path, proc).handle({"op": "health", "listening": [7000, 7100]}))
    assert reply["problems"] == ["not isolated: ipv4 default via eth0", ":7100: nothing listens on it"]


def test_health_of_an_isolated_namespace_whose_ports_listen_is_empty(tmp_path: Path, proc: FakeProc) -> None:
    (proc.root / "net" / "route").write_text(ROUTE_HEADER + "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    (proc.root / "net" / "tcp").write_text(TCP_HEADER + LISTEN_7000)
    assert ok(make_agent(tmp_path, proc).handle({"op": "health", "listening": [7000]}))["problems"] == []
    assert ok(make_agent(tmp_path, proc).handle({"op": "health"}))["problems"] == []


@pytest.mark.parametrize("listening", [7000, [0], [70000], ["7000"], list(range(1, 18)), [True]])
def test_health_refuses_a_listening_field_that_is_not_a_short_list_of_ports(tmp_path: Path, proc: FakeProc,
                                                                            listening: Any) -> None:
    message = error(make_agent(tmp_path, proc).handle({"op": "health", "listening": listening}))
    assert message.startswith('health: field "listening" must be a list of at most 16 ports (integers from 1 to '
                              '65535); got ')
