"""The sandbox's firewall: rule planning as exact argv and restore text, target validation, and the agent's op.

No root and no iptables: the agent runs on a fake command runner that records every argv and
reads each ``iptables-restore`` file while it still exists (the agent removes it afterwards).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.inlab.agent import sandboxrules
from lab.inlab.agent.client import AgentClient
from lab.inlab.agent.commands import Completed
from lab.inlab.agent.requests import BadRequest
from lab.inlab.agent.sandboxrules import chain_rules, jump_args, parse_targets, restore_text
from lab.inlab.agent.service import Agent

UID = 10003
IPT = ["iptables", "-w", "5"]
IP6T = ["ip6tables", "-w", "5"]
EXISTS = Completed(1, "", "iptables: Chain already exists.\n")
DRIVER = "-A LAB-SANDBOX -o lo -s 127.0.0.1 -d 127.0.0.1 -p tcp --sport 7900 -j ACCEPT"
DNS = "-A LAB-SANDBOX -d 127.0.0.11 -j ACCEPT"
BASELINE = f"*filter\n-F LAB-SANDBOX\n{DRIVER}\n{DNS}\n-A LAB-SANDBOX -j DROP\nCOMMIT\n"
LISTED = ("-N LAB-SANDBOX\n-A LAB-SANDBOX -s 127.0.0.1/32 -d 127.0.0.1/32 -o lo -p tcp -m tcp --sport 7900 -j ACCEPT\n"
          "-A LAB-SANDBOX -d 127.0.0.11/32 -j ACCEPT\n-A LAB-SANDBOX -j DROP\n")


class RecordingRunner:
    """Records argv; answers by argv prefix; keeps the text of every restore file it is given."""

    def __init__(self, answers: dict[tuple[str, ...], Completed] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[list[str]] = []
        self.restored: list[tuple[str, str]] = []   # (tool, file text)

    def run(self, argv: Sequence[str], timeout: float = 10.0) -> Completed:
        assert timeout <= 30, "every command has a deadline"
        self.calls.append(list(argv))
        if argv[0].endswith("-restore"):
            self.restored.append((argv[0], Path(argv[-1]).read_text()))
        best = max((k for k in self.answers if tuple(argv[:len(k)]) == k), key=len, default=None)
        return self.answers[best] if best else Completed(0, "", "")

    def spawn(self, argv: Sequence[str]) -> Any:
        raise AssertionError("the sandbox's rules start no background process")

    def forget(self, pid: int) -> None:
        pass


def make_agent(tmp_path: Path, runner: RecordingRunner, *, sandbox_uid: int | None = UID) -> Agent:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True, exist_ok=True)
    captures = tmp_path / "captures"
    captures.mkdir(exist_ok=True)
    return Agent(runner, proc_root=proc, capture_dir=captures, sandbox_uid=sandbox_uid)


def standard_runner() -> RecordingRunner:
    """A namespace where both chains exist, no jump is in place yet, and -S lists the baseline."""
    return RecordingRunner({(*IPT, "-N"): EXISTS, (*IP6T, "-N"): EXISTS, (*IPT, "-C"): Completed(1, "", "no"),
                            (*IP6T, "-C"): Completed(1, "", "no"), (*IPT, "-S"): Completed(0, LISTED, ""),
                            (*IP6T, "-S"): Completed(0, "-N LAB-SANDBOX\n-A LAB-SANDBOX -j DROP\n", "")})


# Planning ------------------------------------------------------------------------------------------

def test_the_chain_accepts_the_driver_channel_dns_and_each_target_then_drops() -> None:
    assert chain_rules([("172.18.0.3", 7000), ("172.18.0.4", 7100)]) == [
        ["-o", "lo", "-s", "127.0.0.1", "-d", "127.0.0.1", "-p", "tcp", "--sport", "7900", "-j", "ACCEPT"],
        ["-d", "127.0.0.11", "-j", "ACCEPT"],
        ["-d", "172.18.0.3", "-p", "tcp", "--dport", "7000", "-j", "ACCEPT"],
        ["-d", "172.18.0.4", "-p", "tcp", "--dport", "7100", "-j", "ACCEPT"],
        ["-j", "DROP"],
    ]
    assert sandboxrules.chain_rules6() == [["-j", "DROP"]]


def test_the_chain_is_rewritten_in_one_restore_transaction() -> None:
    assert restore_text(chain_rules([])) == BASELINE
    assert restore_text(chain_rules([("10.0.0.9", 80)], driver_port=7901)) == (
        "*filter\n-F LAB-SANDBOX\n"
        "-A LAB-SANDBOX -o lo -s 127.0.0.1 -d 127.0.0.1 -p tcp --sport 7901 -j ACCEPT\n"
        f"{DNS}\n-A LAB-SANDBOX -d 10.0.0.9 -p tcp --dport 80 -j ACCEPT\n-A LAB-SANDBOX -j DROP\nCOMMIT\n")


def test_the_jump_matches_the_sandbox_uid_in_output() -> None:
    assert jump_args(UID) == ["-A", "OUTPUT", "-m", "owner", "--uid-owner", "10003", "-j", "LAB-SANDBOX"]
    assert jump_args(UID, "-C")[:2] == ["-C", "OUTPUT"]


def test_the_listing_keeps_the_rules_only() -> None:
    assert sandboxrules.listed_rules(LISTED) == [
        "-A LAB-SANDBOX -s 127.0.0.1/32 -d 127.0.0.1/32 -o lo -p tcp -m tcp --sport 7900 -j ACCEPT",
        "-A LAB-SANDBOX -d 127.0.0.11/32 -j ACCEPT", "-A LAB-SANDBOX -j DROP"]


# Validation ----------------------------------------------------------------------------------------

def test_targets_are_read_in_order_each_once() -> None:
    value = [["172.18.0.3", 7000], ["10.1.2.3", 1], ["172.18.0.3", 7000], ["223.255.255.254", 65535]]
    assert parse_targets("sandbox_allow", value) == [("172.18.0.3", 7000), ("10.1.2.3", 1),
                                                     ("223.255.255.254", 65535)]
    assert parse_targets("sandbox_allow", []) == []
    assert parse_targets("sandbox_allow", [["10.0.0.1", 80]] * 16) == [("10.0.0.1", 80)]


ACCEPTED = ('"targets" is a list of at most 16 [address, port] pairs, e.g. [["172.18.0.3", 7000]]: the address '
            "a unicast IPv4 dotted quad other than 0.0.0.0 and 127.0.0.0/8, the port an integer from 1 to 65535")


@pytest.mark.parametrize(("value", "what"), [
    ("172.18.0.3:7000", "field \"targets\" must be a list; got '172.18.0.3:7000'"),
    ([["10.0.0.1", 80]] * 17, "field \"targets\" has 17 entries, more than 16"),
    ([("10.0.0.1", 80, "tcp")], "targets[0] must be an [address, port] pair; got ('10.0.0.1', 80, 'tcp')"),
    ([{"host": "10.0.0.1", "port": 80}], "targets[0] must be an [address, port] pair"),
    ([["10.0.0.1", 80], ["server", 7000]], "targets[1] address must be an IPv4 dotted quad; got 'server'"),
    ([["10.0.0.01", 80]], "targets[0] address must be an IPv4 dotted quad; got '10.0.0.01'"),
    ([["10.0.0.256", 80]], "targets[0] address must be an IPv4 dotted quad; got '10.0.0.256'"),
    ([["::1", 80]], "targets[0] address must be an IPv4 dotted quad; got '::1'"),
    ([[167772161, 80]], "targets[0] address must be an IPv4 dotted quad; got 167772161"),
    ([["127.0.0.1", 9009]], "targets[0] address 127.0.0.1 is not accepted (unspecified, loopback, multicast"),
    ([["0.0.0.0", 80]], "targets[0] address 0.0.0.0 is not accepted"),
    ([["224.0.0.1", 80]], "targets[0] address 224.0.0.1 is not accepted"),
    ([["10.0.0.1", 0]], "targets[0] port must be an integer from 1 to 65535; got 0"),
    ([["10.0.0.1", 65536]], "targets[0] port must be an integer from 1 to 65535; got 65536"),
    ([["10.0.0.1", "80"]], "targets[0] port must be an integer from 1 to 65535; got '80'"),
    ([["10.0.0.1", True]], "targets[0] port must be an integer from 1 to 65535; got True"),
])
def test_bad_targets_are_refused_naming_what_is_accepted(value: Any, what: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_targets("sandbox_allow", value)
    assert str(info.value).startswith(f"sandbox_allow: {what}")
    assert str(info.value).endswith(ACCEPTED)


# The agent's op -------------------------------------------------------------------------------------

def test_sandbox_allow_replaces_the_targets_in_one_transaction_and_lists_the_rules(tmp_path: Path) -> None:
    runner = standard_runner()
    agent = make_agent(tmp_path, runner)
    reply = agent.handle({"op": "sandbox_allow", "targets": [["172.18.0.3", 7000]]})
    captures = tmp_path / "captures"
    assert reply == {"ok": True, "uid": UID, "targets": [["172.18.0.3", 7000]],
                     "rules": sandboxrules.listed_rules(LISTED), "rules6": ["-A LAB-SANDBOX -j DROP"],
                     "ipv6": "dropped"}
    assert runner.calls == [
        [*IPT, "-N", "LAB-FAULTS"], [*IPT, "-C", "INPUT", "-j", "LAB-FAULTS"],
        [*IPT, "-I", "INPUT", "1", "-j", "LAB-FAULTS"], [*IPT, "-C", "OUTPUT", "-j", "LAB-FAULTS"],
        [*IPT, "-I", "OUTPUT", "1", "-j", "LAB-FAULTS"],
        [*IPT, "-N", "LAB-SANDBOX"],
        ["iptables-restore", "-w", "5", "--noflush", str(captures / "sandbox-rules.iptables")],
        [*IPT, *jump_args(UID, "-C")], [*IPT, *jump_args(UID, "-A")], [*IPT, "-S", "LAB-SANDBOX"],
        [*IP6T, "-N", "LAB-SANDBOX"],
        ["ip6tables-restore", "-w", "5", "--noflush", str(captures / "sandbox-rules.ip6tables")],
        [*IP6T, *jump_args(UID, "-C")], [*IP6T, *jump_args(UID, "-A")], [*IP6T, "-S", "LAB-SANDBOX"],
    ]
    assert runner.restored == [
        ("iptables-restore", f"*filter\n-F LAB-SANDBOX\n{DRIVER}\n{DNS}\n"
                             "-A LAB-SANDBOX -d 172.18.0.3 -p tcp --dport 7000 -j ACCEPT\n-A LAB-SANDBOX -j DROP\nCOMMIT\n"),
        ("ip6tables-restore", "*filter\n-F LAB-SANDBOX\n-A LAB-SANDBOX -j DROP\nCOMMIT\n"),
    ]
    assert list(captures.iterdir()) == []  # the restore files are gone


def test_an_existing_jump_is_not_added_twice(tmp_path: Path) -> None:
    runner = RecordingRunner({(*IPT, "-N"): EXISTS, (*IP6T, "-N"): EXISTS})  # every -C succeeds
    assert make_agent(tmp_path, runner).handle({"op": "sandbox_allow", "targets": []})["ok"] is True
    assert [c for c in runner.calls if "--uid-owner" in c and "-A" in c] == []


def test_reset_clears_the_targets_but_keeps_the_baseline(tmp_path: Path) -> None:
    runner = standard_runner()
    agent = make_agent(tmp_path, runner)
    assert agent.handle({"op": "sandbox_allow", "targets": [["172.18.0.3", 7000]]})["ok"] is True
    runner.restored.clear()
    reply = agent.handle({"op": "reset"})
    assert reply["ok"] is True and reply["sandbox_targets"] == []
    assert runner.restored == [("iptables-restore", BASELINE),
                               ("ip6tables-restore", "*filter\n-F LAB-SANDBOX\n-A LAB-SANDBOX -j DROP\nCOMMIT\n")]
    # The chain is rewritten, never flushed on its own and never unhooked.
    assert not [c for c in runner.calls if c[3:5] == ["-F", "LAB-SANDBOX"] or c[3:5] == ["-D", "OUTPUT"]]


def test_an_empty_list_clears_the_targets(tmp_path: Path) -> None:
    runner = standard_runner()
    agent = make_agent(tmp_path, runner)
    agent.handle({"op": "sandbox_allow", "targets": [["172.18.0.3", 7000]]})
    runner.restored.clear()
    assert agent.handle({"op": "sandbox_allow", "targets": []})["targets"] == []
    assert runner.restored[0] == ("iptables-restore", BASELINE)


def test_without_ip6tables_ipv4_is_still_enforced_and_the_reply_says_so(tmp_path: Path) -> None:
    runner = standard_runner()
    runner.answers[("ip6tables-restore",)] = Completed(2, "", "ip6tables-restore: unable to initialize table 'filter'")
    reply = make_agent(tmp_path, runner).handle({"op": "sandbox_allow", "targets": []})
    assert reply["ok"] is True and reply["rules6"] == []
    assert reply["ipv6"] == ("unavailable: ip6tables-restore of LAB-SANDBOX failed (exit 2): "
                             "ip6tables-restore: unable to initialize table 'filter'")
    assert runner.restored[0] == ("iptables-restore", BASELINE)


def test_a_failed_ipv4_restore_is_an_error(tmp_path: Path) -> None:
    runner = standard_runner()
    runner.answers[("iptables-restore",)] = Completed(1, "", "iptables-restore: line 3 failed")
    reply = make_agent(tmp_path, runner).handle({"op": "sandbox_allow", "targets": []})
    assert reply == {"ok": False, "error": "iptables-restore of LAB-SANDBOX failed (exit 1): "
                                           "iptables-restore: line 3 failed"}
    assert not [c for c in runner.calls if "--uid-owner" in c]  # never hooked to a chain that was not written


@pytest.mark.parametrize(("request_", "message"), [
    ({"op": "sandbox_allow"}, 'sandbox_allow: field "targets" is required. ' + ACCEPTED),
    ({"op": "sandbox_allow", "targets": [["server", 7000]]}, "sandbox_allow: targets[0] address must be"),
    ({"op": "sandbox_allow", "targets": [], "uid": 0}, "sandbox_allow: unknown field(s) 'uid'; accepted fields: "
                                                       "targets"),
])
def test_bad_requests_touch_no_rule(tmp_path: Path, request_: dict[str, Any], message: str) -> None:
    runner = standard_runner()
    reply = make_agent(tmp_path, runner).handle(request_)
    assert reply["ok"] is False and reply["error"].startswith(message)
    assert runner.calls == []


def test_the_server_agent_guards_no_sandbox(tmp_path: Path) -> None:
    runner = standard_runner()
    agent = make_agent(tmp_path, runner, sandbox_uid=None)
    reply = agent.handle({"op": "sandbox_allow", "targets": []})
    assert reply == {"ok": False, "error": "sandbox_allow: this agent guards no sandbox (it was started without "
                                           "--sandbox-uid; only the client-agent is, at 127.0.0.1:9009 inside "
                                           "the client)"}
    reset = agent.handle({"op": "reset"})
    assert reset["ok"] is True and "sandbox_targets" not in reset
    assert not [c for c in runner.calls if "LAB-SANDBOX" in c or c[0].endswith("-restore")]


def test_the_client_method_sends_pairs_and_returns_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def request(self: AgentClient, op: str, **fields: Any) -> dict[str, Any]:
        sent.append((op, fields))
        return {"ok": True, "uid": UID, "targets": fields["targets"], "rules": [], "rules6": [], "ipv6": "dropped"}

    monkeypatch.setattr(AgentClient, "request", request)
    reply = AgentClient("127.0.0.1").sandbox_allow([("172.18.0.3", 7000)])
    assert sent == [("sandbox_allow", {"targets": [["172.18.0.3", 7000]]})]
    assert reply == {"uid": UID, "targets": [["172.18.0.3", 7000]], "rules": [], "rules6": [], "ipv6": "dropped"}


def test_the_client_agents_reset_aborts_connections_left_closing_towards_the_servers(tmp_path: Path) -> None:
    runner = standard_runner()
    runner.answers[("ss", "-K")] = Completed(0, "FIN-WAIT-1 0 113 172.30.0.5:40968 172.30.0.3:7000\n", "")
    agent = make_agent(tmp_path, runner)
    assert agent.op_reset()["orphans_aborted"] == 1
    assert ["ss", "-K", "-t", "-n", "-H", "state", "fin-wait-1", "state", "closing", "state", "last-ack",
            "( dport = :7000 or dport = :7100 or dport = :7200 )"] in runner.calls
    # The server-agent has no such job: its side of a connection is the server's.
    other = standard_runner()
    assert "orphans_aborted" not in make_agent(tmp_path, other, sandbox_uid=None).op_reset()
    assert not any(call[0] == "ss" for call in other.calls)
