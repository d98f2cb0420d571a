"""The resolver faults without Docker: dns-silent and dns-refused ask the client-agent for their rule and
clear it; DnsTally sums its own counters; lab.inlab.resolver's worker and run; the two judges; and the
mutants of the three new faults (dns-silent, dns-refused, clock-jump) rewrite what they claim."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from lab.inlab import faults, mutants, resolver
from lab.inlab.faults._dns import DnsTally, ResolverFault
from lab.inlab.scenario import Outcome
from lab.scenarios import dns_refused, dns_silent


class FakeClientAgent:
    """Answers dns/counters/unblock like the client-agent; counters come from ``packets`` (id -> count)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.next_id = 1
        self.kinds: dict[str, str] = {}
        self.packets: dict[str, int] = {}

    def dns(self, action: str, *, address: str = "127.0.0.11") -> list[str]:
        self.calls.append(("dns", {"action": action, "address": address}))
        kinds = ("queries", "answers", "errors") if action == "count" else (action,)
        ids = []
        for kind in kinds:
            rid = f"r{self.next_id}"
            self.next_id += 1
            self.kinds[rid] = kind
            ids.append(rid)
        return ids

    def counters(self) -> list[dict[str, Any]]:
        return [{"id": rid, "packets": self.packets.get(rid, 0), "dns": kind} for rid, kind in self.kinds.items()]

    def unblock(self) -> list[str]:
        self.calls.append(("unblock", {}))
        removed, self.kinds = sorted(self.kinds), {}
        return removed


class FaultContext:
    def __init__(self) -> None:
        self.client_agent = FakeClientAgent()
        self.server_agent = self.toxiproxy = None     # MutatedContext wraps them; these faults never use them
        self.marks: list[str] = []

    def mark(self, actor: str, what: str, **facts: Any) -> float:
        self.marks.append(what)
        return 0.0


# The faults ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "action"), [("dns-silent", "drop"), ("dns-refused", "reject")])
def test_a_resolver_fault_asks_for_its_rule_and_clear_unblocks_once(name: str, action: str) -> None:
    ctx = FaultContext()
    fault = faults.create(name, ctx, {})  # type: ignore[arg-type]
    assert isinstance(fault, ResolverFault) and fault.name == name and fault.action == action
    fault.clear()                       # never applied: nothing to undo
    fault.apply()
    assert fault.ids == ["r1"] and fault.active
    fault.clear()
    fault.clear()
    assert ctx.client_agent.calls == [("dns", {"action": action, "address": "127.0.0.11"}), ("unblock", {})]


@pytest.mark.parametrize("name", ["dns-silent", "dns-refused"])
def test_a_resolver_fault_takes_no_parameters(name: str) -> None:
    with pytest.raises(Exception, match="address"):
        faults.create(name, FaultContext(), {"address": "127.0.0.12"})  # type: ignore[arg-type]


def test_the_tally_counts_only_its_own_rules_by_kind() -> None:
    agent = FakeClientAgent()
    agent.dns("count")                  # someone else's counters: r1-r3
    tally = DnsTally(agent)             # r4-r6
    agent.dns("drop")                   # the fault: r7
    assert tally.ids == ["r4", "r5", "r6"]
    agent.packets.update({"r1": 100, "r2": 100, "r3": 100, "r4": 6, "r5": 4, "r6": 1, "r7": 50})
    assert tally.counts() == {"queries": 6, "answers": 4, "errors": 1}


def test_the_tally_reads_zero_for_rules_the_listing_lacks() -> None:
    agent = FakeClientAgent()
    tally = DnsTally(agent)
    agent.kinds.clear()                 # flushed behind its back
    assert tally.counts() == {"queries": 0, "answers": 0, "errors": 0}


# The judges ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seen", "ok"), [
    ({"queries": 4, "answers": 0, "errors": 0}, True),
    ({"queries": 4, "answers": 1, "errors": 0}, False),      # something answered
    ({"queries": 4, "answers": 0, "errors": 4}, False),      # refused, not silent (the "reject" mutant)
])
def test_the_silent_judge_wants_nothing_back(seen: dict[str, int], ok: bool) -> None:
    held, detail = dns_silent.silent(seen, 2)
    assert held is ok
    assert detail == (f"{seen['queries']} queries in, {seen['answers']} DNS answers and {seen['errors']} ICMP "
                      "errors back")


@pytest.mark.parametrize(("seen", "ok"), [
    ({"queries": 4, "answers": 0, "errors": 4}, True),
    ({"queries": 4, "answers": 0, "errors": 0}, False),      # dropped (the "drop" mutant, or no fault at all)
    ({"queries": 4, "answers": 0, "errors": 3}, False),      # one query got no error
    ({"queries": 4, "answers": 4, "errors": 4}, False),      # answered as well
    ({"queries": 0, "answers": 0, "errors": 0}, False),
])
def test_the_refused_judge_wants_one_icmp_error_per_query_and_no_answer(seen: dict[str, int], ok: bool) -> None:
    held, detail = dns_refused.refused(seen, 2)
    assert held is ok
    assert detail == (f"{seen['queries']} queries in, {seen['errors']} ICMP port unreachable and "
                      f"{seen['answers']} DNS answers back")


# lab.inlab.resolver ----------------------------------------------------------------------------------

class Subject:
    impl, host, port = "robust", "server", 7000

    def __init__(self, fails: BaseException | None = None) -> None:
        self.fails = fails

    def connect(self) -> None:
        if self.fails is not None:
            raise self.fails


class ScenarioContext(FaultContext):
    """Enough of the runner's context for resolver.run: the fault goes in, the subjects' queries are counted."""

    def __init__(self, during: dict[str, int], judged: tuple[str, ...] = ("robust", "naive")) -> None:
        super().__init__()
        self.judged = judged
        self.facts: dict[str, Any] = {}
        self.proofs: list[tuple[str, bool, str]] = []
        self.during = during
        self.exchanged: list[Any] = []
        self.readied = 0

    def target(self) -> tuple[str, int]:
        return "server", 7000

    def prove(self, name: str, ok: bool, detail: str) -> None:
        self.proofs.append((name, ok, detail))

    def ready(self) -> None:
        self.readied += 1

    def exchange(self, subject: Any, outcome: Outcome, body: bytes) -> None:
        self.exchanged.append(body)

    def side_by_side(self, worker: Any, fault: Any = None) -> None:
        fault()
        tally_ids = [rid for rid, kind in self.client_agent.kinds.items() if kind in self.during]
        for rid in tally_ids:       # what the subjects' lookups did while the fault was in
            self.client_agent.packets[rid] = self.client_agent.packets.get(rid, 0) + self.during[
                self.client_agent.kinds[rid]]


@pytest.fixture
def healthy_lookup(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                    flags: int = 0) -> Any:
        if flags & socket.AI_NUMERICHOST:
            return real(host, port, family, type, proto, flags)
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("172.18.0.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_run_counts_only_what_happened_while_the_fault_was_in_and_clears_it(healthy_lookup: list[str]) -> None:
    ctx = ScenarioContext({"queries": 4, "answers": 0, "errors": 0})
    # The lab's own healthy lookup before the fault: one query, one answer (the tally must see an answer).
    original_counters = ctx.client_agent.counters
    reads: list[int] = []

    def counters() -> list[dict[str, Any]]:
        if not reads:                   # the first read follows that lookup
            ctx.client_agent.packets.update({"r1": 1, "r2": 1})
        reads.append(1)
        return original_counters()

    ctx.client_agent.counters = counters  # type: ignore[method-assign]
    applied: list[Any] = []

    def apply() -> Any:
        fault = faults.create("dns-silent", ctx, {})  # type: ignore[arg-type]
        fault.apply()
        applied.append(fault)
        return fault

    seen = resolver.run(ctx, apply, dns_silent.silent)
    assert seen == {"queries": 4, "answers": 0, "errors": 0} == ctx.facts["dns_counts"]
    assert ctx.client_agent.calls == [("dns", {"action": "count", "address": "127.0.0.11"}),
                                      ("dns", {"action": "drop", "address": "127.0.0.11"}), ("unblock", {})]
    assert not applied[0].active
    assert healthy_lookup == ["server", "server"]                 # before and after the fault, by name
    assert ctx.facts["resolved_after"] == "172.18.0.3"
    assert ctx.proofs == [
        ("before the fault the resolver answered the lab's own lookup of 'server', and the counters saw it", True,
         "server → 172.18.0.3; queries 1, DNS answers 1, ICMP errors 0"),
        ("the subjects' queries reached the resolver's address while the fault was in place: at least one per "
         "judged subject (2)", True, "4 queries in to 127.0.0.11"),
        ("the resolver's fault (dns-silent) did what it claims to each query", True,
         "4 queries in, 0 DNS answers and 0 ICMP errors back")]


def test_run_fails_its_proofs_when_counters_see_nothing(healthy_lookup: list[str]) -> None:
    ctx = ScenarioContext({"queries": 0, "answers": 0, "errors": 0}, judged=("robust",))
    seen = resolver.run(ctx, lambda: None, dns_refused.refused)     # no fault applied at all
    assert seen == {"queries": 0, "answers": 0, "errors": 0}
    assert [(ok, detail) for _, ok, detail in ctx.proofs] == [
        (False, "server → 172.18.0.3; queries 0, DNS answers 0, ICMP errors 0"),
        (False, "0 queries in to 127.0.0.11"),
        (False, "0 queries in, 0 ICMP port unreachable and 0 DNS answers back")]
    assert ctx.proofs[2][0] == "the resolver's fault (none applied) did what it claims to each query"


def test_the_lab_lookup_reports_a_failure_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fail(*args: Any, **kwargs: Any) -> Any:
        if len(args) >= 6 and args[5] & socket.AI_NUMERICHOST:
            return real(*args)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    assert resolver._lookup("server") == (False, "gaierror: [Errno -3] Temporary failure in name resolution")
    assert resolver._lookup("127.0.0.1") == (True, "127.0.0.1")


def test_the_worker_connects_by_name_times_it_and_makes_one_exchange() -> None:
    ctx = ScenarioContext({})
    outcome = Outcome("robust")
    resolver.connect_by_name()(ctx, Subject(), outcome)  # type: ignore[arg-type]
    assert ctx.readied == 1 and len(ctx.exchanged) == 1
    assert ctx.marks == ["connecting by name", "connected"]
    assert isinstance(outcome.measurements["connect_s"], float) and outcome.measurements["connect_s"] < 0.5


def test_the_worker_records_how_long_a_failed_connect_took() -> None:
    ctx = ScenarioContext({})
    outcome = Outcome("naive")
    with pytest.raises(socket.gaierror):
        resolver.connect_by_name()(ctx, Subject(socket.gaierror(socket.EAI_AGAIN, "x")), outcome)  # type: ignore[arg-type]
    assert "connect_s" in outcome.measurements and ctx.exchanged == [] and ctx.marks == ["connecting by name"]


# The mutants of the three new faults -----------------------------------------------------------------

def test_the_new_faults_have_exactly_these_mutants() -> None:
    assert [m.name for m in mutants.for_fault("dns-silent")] == ["no-op", "wrong-address", "reject"]
    assert [m.name for m in mutants.for_fault("dns-refused")] == ["no-op", "wrong-address", "drop"]
    assert [m.name for m in mutants.for_fault("clock-jump")] == ["no-op", "tenth", "other-way"]


@pytest.mark.parametrize(("key", "sent"), [
    ("dns-silent:no-op", []),
    ("dns-silent:wrong-address", [("dns", {"action": "drop", "address": "127.0.0.12"})]),
    ("dns-silent:reject", [("dns", {"action": "reject", "address": "127.0.0.11"})]),
    ("dns-refused:no-op", []),
    ("dns-refused:wrong-address", [("dns", {"action": "reject", "address": "127.0.0.12"})]),
    ("dns-refused:drop", [("dns", {"action": "drop", "address": "127.0.0.11"})]),
])
def test_dns_mutants_rewrite_the_faults_request(key: str, sent: list[Any]) -> None:
    ctx = FaultContext()
    mutant = mutants.get(key)
    fault = faults.create(mutant.fault, mutants.MutatedContext(ctx, mutant), {})  # type: ignore[arg-type]
    fault.apply()
    assert ctx.client_agent.calls == sent
    assert fault.ids == ([] if not sent else ["r1"])
    assert any(f"mutant {key}: dns" in m for m in ctx.marks)
    fault.clear()                          # the clean-up is never weakened: it always reaches the agent
    assert ctx.client_agent.calls[-1] == ("unblock", {})


class ClockContext(FaultContext):
    def __init__(self) -> None:
        super().__init__()
        self.wall_clock = Clock()


class Clock:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def jump(self, offset_s: int) -> None:
        self.calls.append(("jump", offset_s))

    def reset(self) -> None:
        self.calls.append(("reset", None))


@pytest.mark.parametrize(("key", "offset", "sent"), [
    ("clock-jump:no-op", 3600, []),
    ("clock-jump:tenth", 3600, [("jump", 360)]),
    ("clock-jump:tenth", -3600, [("jump", -360)]),
    ("clock-jump:other-way", 3600, [("jump", -3600)]),
    ("clock-jump:other-way", -3600, [("jump", 3600)]),
])
def test_clock_mutants_rewrite_the_jump_and_never_the_reset(key: str, offset: int, sent: list[Any]) -> None:
    ctx = ClockContext()
    mutant = mutants.get(key)
    fault = faults.create("clock-jump", mutants.MutatedContext(ctx, mutant), {"offset_s": offset})  # type: ignore[arg-type]
    fault.apply()
    fault.clear()
    assert ctx.wall_clock.calls == [*sent, ("reset", None)]
    assert any(f"mutant {key}: clock jump" in m for m in ctx.marks)


def test_a_mutated_context_without_a_client_agent_or_wall_clock_passes_the_lack_through() -> None:
    class Bare:
        server_agent = toxiproxy = object()

        def mark(self, actor: str, what: str, **facts: Any) -> float:
            return 0.0

    mutated = mutants.MutatedContext(Bare(), mutants.get("dns-silent:no-op"))
    with pytest.raises(AttributeError):
        mutated.client_agent  # noqa: B018
    with pytest.raises(AttributeError):
        mutated.wall_clock  # noqa: B018


def test_a_mutant_does_not_touch_the_scenarios_own_counters() -> None:
    # The tally goes through the real context: only the fault sees the mutated one (runner.Context.apply).
    ctx = FaultContext()
    tally = DnsTally(ctx.client_agent)
    mutant = mutants.get("dns-silent:wrong-address")
    faults.create("dns-silent", mutants.MutatedContext(ctx, mutant), {}).apply()  # type: ignore[arg-type]
    assert ctx.client_agent.calls == [("dns", {"action": "count", "address": "127.0.0.11"}),
                                      ("dns", {"action": "drop", "address": "127.0.0.12"})]
    assert tally.ids == ["r1", "r2", "r3"]
