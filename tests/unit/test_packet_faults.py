"""The packet faults' evidence: per-rule counters by direction and target, and segments sent again."""

from __future__ import annotations

from typing import Any

from lab.evidence import read_capture
from lab.evidence.anchor import Window
from lab.evidence.streams import resent
from lab.inlab.agent.iptables import Rule, parse_counters
from lab.inlab.faults._iptables import IptablesFault, IptablesParams, Tally
from tests.support.pcap_builder import Flow, write_pcap

MS = 1_000_000


class FakeAgent:
    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.rules = rules
        self.blocked: list[dict[str, Any]] = []

    def counters(self) -> list[dict[str, Any]]:
        return self.rules

    def block(self, port: int | None = None, **fields: Any) -> list[str]:
        self.blocked.append({"port": port, **fields})
        return ["c1", "c2"]


class FakeCtx:
    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.server_agent = FakeAgent(rules)


def rule(rule_id: str, hook: str, match: str, packets: int, target: str = "DROP") -> dict[str, Any]:
    return {"id": rule_id, "hook": hook, "match": match, "packets": packets, "bytes": 60 * packets, "target": target}


RULES = [rule("c1", "INPUT", "--dport 7000", 100, "tcp"), rule("c2", "OUTPUT", "--sport 7000", 90, "tcp"),
         rule("r1", "INPUT", "--dport 7000", 5), rule("r2", "OUTPUT", "--sport 7000", 3),
         rule("r3", "INPUT", "--dport 7100", 50), rule("r4", "INPUT", "--dport 7000", 7, "REJECT")]


def fault_with(ids: list[str], rules: list[dict[str, Any]] = RULES) -> IptablesFault:
    fault = IptablesFault(FakeCtx(rules), IptablesParams(port=7000))   # type: ignore[arg-type]
    fault.ids = ids
    return fault


def test_counts_are_the_faults_own_rules_per_direction_port_and_target() -> None:
    assert fault_with(["r1", "r2", "r4"]).counts() == {"in": 12, "out": 3}
    assert fault_with(["r1", "r2", "r4"]).counts(target="DROP") == {"in": 5, "out": 3}
    assert fault_with(["r4"]).matched("in", target="REJECT") == 7
    # The scenario's counting rules, and a rule on another port (the wrong-port mutant's), never count.
    assert fault_with(["r3"]).counts() == {"in": 0, "out": 0}
    assert fault_with([]).counts() == {"in": 0, "out": 0}


def test_a_tally_counts_both_directions_with_rules_that_only_count() -> None:
    ctx = FakeCtx(RULES)
    tally = Tally(ctx.server_agent, 7000)   # type: ignore[arg-type]
    assert ctx.server_agent.blocked == [{"port": 7000, "direction": "both", "action": "count"}]
    assert tally.counts() == {"in": 100, "out": 90}


def test_a_count_rule_has_no_target_and_its_counters_read_back() -> None:
    counting = Rule("r9", "INPUT", ("--dport", "7000"), "count", False, None)
    assert counting.args()[-4:] == ["-m", "comment", "--comment", "socket-lab:r9"]
    listing = ("Chain LAB-FAULTS (2 references)\n"
               "    pkts      bytes target     prot opt in     out     source               destination\n"
               "      42     2184            tcp  --  *      *      !127.0.0.0/8          0.0.0.0/0            "
               "tcp dpt:7000 /* socket-lab:r9 */\n")
    assert [(r["id"], r["packets"]) for r in parse_counters(listing)] == [("r9", 42)]


def _flow(port: int = 40000) -> Flow:
    flow = Flow(("127.0.0.2", port), ("127.0.0.3", 7000))
    flow.handshake()
    return flow


def test_resent_finds_retransmissions_and_probes_in_the_window_only() -> None:
    flow = _flow()
    original = flow.send("c", b"x" * 100)                      # before the window: the original
    fault_ns = flow.time_ns + MS // 2
    flow.send("c", b"x" * 100, seq=original.seq)               # the same bytes again, inside the window
    flow.send("c", b"", flags="A", seq=original.seq + 99)      # a keepalive-shaped probe: one below
    flow.send("c", b"", flags="A")                             # a pure ACK at the current sequence number
    flow.send("c", b"y" * 10)                                  # new data
    pcap = read_capture(write_pcap(flow.packets))
    found = resent(pcap, Window(fault_ns / 1e9, None), dst_port=7000)
    assert [(s.payload_len, s.seq - original.seq) for s in found] == [(100, 0), (0, 99)]
    assert resent(pcap, Window(None, fault_ns / 1e9), dst_port=7000) == []


def test_resent_keeps_to_the_connections_asked_for() -> None:
    ours, other = _flow(40000), _flow(40001)
    for flow in (ours, other):
        first = flow.send("c", b"x" * 10)
        flow.send("c", b"x" * 10, seq=first.seq)
    pcap = read_capture(write_pcap(sorted(ours.packets + other.packets, key=lambda p: p.time_ns)))
    assert [s.src.port for s in resent(pcap, dst_port=7000, peer_ports={40000})] == [40000]

