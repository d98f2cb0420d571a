"""The mutation suite's parts without Docker: the catalogue, the request rewriting, the classification."""

from __future__ import annotations

from typing import Any

import pytest

from lab.host import selftest
from lab.inlab import mutants, scenario
from lab.toolerrors import UsageError

FOUND = scenario.discover()


class FakeAgent:
    """Records what a fault sends; answers like the agent and Toxiproxy do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def block(self, **fields: Any) -> list[str]:
        self.calls.append(("block", (), fields))
        return ["r1"]

    def signal(self, target: str, signal: str) -> list[int]:
        self.calls.append(("signal", (target, signal), {}))
        return [42]

    def wait_process(self, target: str, state: str, **kwargs: Any) -> int:
        self.calls.append(("wait_process", (target, state), kwargs))
        return 43

    def add_toxic(self, proxy: str, kind: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(("add_toxic", (proxy, kind), fields))
        return {}

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls.append(("remove_toxic", (proxy, name), {}))

    def counters(self) -> list[dict[str, Any]]:
        return [{"packets": 7}]


class FakeContext:
    def __init__(self) -> None:
        self.server_agent = FakeAgent()
        self.toxiproxy = FakeAgent()
        self.marks: list[str] = []
        self.controls: list[tuple[str, dict[str, Any]]] = []

    def mark(self, actor: str, what: str, **facts: Any) -> float:
        self.marks.append(what)
        return 0.0

    def server_control(self, server: str = "threaded", **request: Any) -> dict[str, Any]:
        self.controls.append((server, request))
        return {"ok": True, "behaviour": {}}


def test_every_fault_a_scenario_uses_has_at_least_two_mutants() -> None:
    assert selftest.missing_mutants(FOUND) == []
    used = selftest.faults_used(FOUND)
    assert used["vanish"] == ["failover", "host-vanishes"] and "clean-close" in used["behave"]
    assert all(mutants.for_fault(fault) for fault in used)


def test_every_mutant_belongs_to_a_registered_fault_and_is_named_once() -> None:
    from lab.inlab import faults

    keys = [m.key for m in mutants.CATALOGUE]
    assert len(keys) == len(set(keys))
    assert {m.fault for m in mutants.CATALOGUE} <= set(faults.names())
    with pytest.raises(UsageError, match=r"unknown mutant 'vanish:nosuch'; known mutants: .*vanish:in-only"):
        mutants.get("vanish:nosuch")


def test_the_plan_runs_each_mutant_in_every_scenario_that_uses_its_fault_and_can_be_narrowed() -> None:
    whole = selftest.plan(FOUND)
    assert ("crash:cont", "process-crash") in {(m.key, s) for m, s in whole}
    assert ("crash:cont", "server-restart") in {(m.key, s) for m, s in whole}
    narrow = selftest.plan(FOUND, faults=["crash"], scenarios=["process-crash"])
    assert {s for _, s in narrow} == {"process-crash"}
    assert {m.fault for m, _ in narrow} == {"crash"} and len(narrow) == len(mutants.for_fault("crash"))


def test_a_one_direction_mutant_rewrites_the_block_request_and_nothing_else() -> None:
    ctx = FakeContext()
    mutated = mutants.MutatedContext(ctx, mutants.get("vanish:in-only"))
    mutated.server_agent.block(port=7000, direction="both", action="drop")
    assert ctx.server_agent.calls == [("block", (), {"port": 7000, "direction": "in", "action": "drop"})]
    assert mutated.server_agent.counters() == [{"packets": 7}]          # reads are the real ones
    assert any("mutant vanish:in-only" in m for m in ctx.marks)


def test_magnitude_port_and_swallow_mutants() -> None:
    ctx = FakeContext()
    mutants.MutatedContext(ctx, mutants.get("loss:tenth")).server_agent.block(port=7000, probability=0.1)
    mutants.MutatedContext(ctx, mutants.get("vanish:wrong-port")).server_agent.block(port=7000)
    assert mutants.MutatedContext(ctx, mutants.get("vanish:no-op")).server_agent.block(port=7000) == []
    sent = [fields for _, _, fields in ctx.server_agent.calls]
    assert sent[0]["probability"] == pytest.approx(0.01) and sent[1]["port"] == 7100 and len(sent) == 2


def test_signal_mutants_rename_the_signal_or_the_target_and_waits_follow_the_target() -> None:
    ctx = FakeContext()
    mutants.MutatedContext(ctx, mutants.get("crash:cont")).server_agent.signal("threaded", "KILL")
    wrong = mutants.MutatedContext(ctx, mutants.get("freeze:wrong-server"))
    wrong.server_agent.signal("threaded", "STOP")
    wrong.server_agent.wait_process("threaded", "stopped", timeout=5)
    assert ctx.server_agent.calls == [("signal", ("threaded", "CONT"), {}), ("signal", ("selectors", "STOP"), {}),
                                      ("wait_process", ("selectors", "stopped"), {"timeout": 5})]


def test_toxic_mutants_rewrite_the_toxic_and_a_swallowed_toxic_is_never_removed() -> None:
    ctx = FakeContext()
    mutants.MutatedContext(ctx, mutants.get("latency:toxicity-0")).toxiproxy.add_toxic(
        "threaded", "latency", stream="downstream", toxicity=1.0, latency=200)
    mutants.MutatedContext(ctx, mutants.get("latency:tenth")).toxiproxy.add_toxic(
        "threaded", "latency", stream="downstream", toxicity=1.0, latency=200)
    mutants.MutatedContext(ctx, mutants.get("latency:wrong-proxy")).toxiproxy.add_toxic(
        "threaded", "latency", toxicity=1.0, latency=200)
    noop = mutants.MutatedContext(ctx, mutants.get("latency:no-op"))
    noop.toxiproxy.add_toxic("threaded", "latency", latency=200)
    noop.toxiproxy.remove_toxic("threaded", "lab_latency_downstream")
    calls = ctx.toxiproxy.calls
    assert calls[0][2]["toxicity"] == 0.0 and calls[1][2]["latency"] == 20 and calls[2][1] == ("selectors", "latency")
    assert len(calls) == 3


def test_behave_mutants_change_the_server_or_the_request() -> None:
    ctx = FakeContext()
    mutants.MutatedContext(ctx, mutants.get("behave:wrong-server")).server_control("threaded", cmd="behave", mode="close")
    mutants.MutatedContext(ctx, mutants.get("behave:later")).server_control("threaded", cmd="behave", after=2)
    assert ctx.controls == [("selectors", {"cmd": "behave", "mode": "close"}),
                            ("threaded", {"cmd": "behave", "after": 12})]


def _report(*, fidelity: list[dict[str, Any]], oracle_ok: bool = True, aborted: str | None = None,
            applied: str = "vanish") -> dict[str, Any]:
    return {"timeline": [{"t": 1.0, "actor": "lab", "what": f"fault: {applied}"}], "aborted": aborted,
            "fidelity": fidelity,
            "verdicts": {"robust": {"ok": oracle_ok, "checks": [{"name": "outcome", "ok": oracle_ok, "detail": ""}]}}}


@pytest.mark.parametrize(("report", "caught", "by"), [
    (_report(fidelity=[{"name": "both directions dropped", "ok": False, "detail": "s2c 3 packets"}]), "proof",
     "both directions dropped (s2c 3 packets)"),
    (_report(fidelity=[{"name": "p", "ok": True, "detail": "d"}], oracle_ok=False), "oracle", "robust: outcome"),
    (_report(fidelity=[{"name": "p", "ok": False, "detail": "d"}], aborted="not stopped within 5 s"), "abort",
     "not stopped within 5 s"),
    (_report(fidelity=[{"name": "p", "ok": True, "detail": "d"}]), "missed", "every proof and oracle held"),
    (_report(fidelity=[{"name": "p", "ok": True, "detail": "d"}], applied="loss"), "unused",
     "the run never applied vanish"),
])
def test_only_a_failed_fidelity_proof_in_a_run_that_did_not_abort_counts_as_caught(report: Any, caught: str,
                                                                                   by: str) -> None:
    assert selftest.classify(report, "vanish") == (caught, by)


def test_the_suite_runs_each_pair_once_and_renders_a_table_with_totals() -> None:
    pairs = selftest.plan(FOUND, faults=["vanish"], scenarios=["host-vanishes"])
    seen: list[tuple[str, str]] = []

    def run(name: str, key: str) -> Any:
        seen.append((name, key))
        ok = key == "vanish:in-only"      # the one mutant whose proof holds: missed
        return _report(fidelity=[{"name": "both directions dropped", "ok": ok, "detail": ""}])

    ticks = iter(range(100))
    rows = selftest.run_suite(run, pairs, clock=lambda: float(next(ticks)))
    assert seen == [(s, m.key) for m, s in pairs]
    assert [r.caught for r in rows if r.mutant == "in-only"] == ["missed"]
    text = selftest.render(rows)
    assert text.splitlines()[0].split()[:5] == ["fault", "mutant", "scenario", "caught", "seconds"]
    assert text.endswith(f"{len(rows) - 1} of {len(rows)} mutant runs caught by a fidelity proof")
    assert all(r.seconds == 1.0 for r in rows)
