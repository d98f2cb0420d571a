"""Fault proofs for graded code rest on its own connections (Context.prove_each), and the card uses them."""

from __future__ import annotations

from typing import Any

from lab.grading import card as grading
from lab.grading import verdicts as gv
from lab.inlab import runner
from lab.inlab import scenario as scn
from lab.inlab.runreport import SCHEMA_VERSION

SCENARIOS = scn.discover()
GRADED = "sandbox:mine_00000001"


def context() -> runner.Context:
    ctx = runner.Context(SCENARIOS["frozen-process"], ["robust", GRADED])
    ctx.unjudged = [GRADED]
    ctx._client_ports = {"robust": {4000}, GRADED: {5000, 5001, 5002}}
    ctx._port_order = {GRADED: [5000, 5001, 5002]}
    return ctx


def recording_proof(seen: list[tuple[list[str], set[int]]]) -> Any:
    def proof(ctx: runner.Context, ok: bool) -> None:
        seen.append((ctx.judged, ctx.client_ports()))
        ctx.prove("the fault held", ok, f"ports {sorted(ctx.client_ports())}")
    return proof


def test_a_proof_runs_for_the_judged_then_on_the_graded_programs_connections_open_at_the_fault() -> None:
    ctx = context()
    ctx._ports_at_fault = {GRADED: {5001}}   # it reconnected later (5002): that one is not looked at
    seen: list[tuple[list[str], set[int]]] = []
    ctx.prove_each(recording_proof(seen), True)
    assert seen == [(["robust"], {4000}), ([GRADED], {5001})]
    assert [c.detail for c in ctx.fidelity] == ["ports [4000]"]
    assert [c.detail for c in ctx.own_fidelity[GRADED]] == ["ports [5001]"]
    assert ctx.proving_for is None and ctx.judged == ["robust"] and ctx.client_ports() == {4000}


def test_for_a_fault_in_place_before_anyone_connected_its_first_connection_is_the_one() -> None:
    ctx = context()
    seen: list[tuple[list[str], set[int]]] = []
    ctx.prove_each(recording_proof(seen), True)
    assert seen[1] == ([GRADED], {5000})


def test_code_that_never_connected_gets_no_proof_of_its_own_and_the_run_keeps_its_own() -> None:
    ctx = context()
    ctx._port_order, ctx._client_ports = {}, {"robust": {4000}}
    seen: list[tuple[list[str], set[int]]] = []
    ctx.prove_each(recording_proof(seen), False)
    assert seen == [(["robust"], {4000})] and ctx.own_fidelity == {}
    assert [c.ok for c in ctx.fidelity] == [False]


def test_a_proof_that_breaks_on_its_connections_is_a_failed_proof_of_its_own_not_an_abort() -> None:
    ctx = context()

    def proof(c: runner.Context) -> None:
        if c.proving_for:
            raise KeyError("no such leg")
        c.prove("the fault held", True)

    ctx.prove_each(proof)
    assert [c.ok for c in ctx.fidelity] == [True]
    (own,) = ctx.own_fidelity[GRADED]
    assert (own.name, own.ok, own.detail) == ("the proof could be read on its own connection (KeyError)", False,
                                              "'no such leg'")


def report(own: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = {"status": "error", "error": "TimeoutError", "message": "timed out", "facts": {}, "ended_at": 13.0,
               "exchanges_ok": 2, "corrupt": 0, "errno_name": None, "measurements": {}}
    robust = dict(outcome, error="PeerUnresponsive")
    return {"schema_version": SCHEMA_VERSION, "scenario": {"name": "frozen-process"}, "ok": True, "timeline": [],
            "bounds": {}, "fault_at": 10.0, "watchdog_s": 8.0, "aborted": None,
            "fidelity": [{"name": "the fault held", "ok": True, "detail": "robust"}], "fidelity_ok": True,
            "facts": {}, "verdicts": {"robust": {"ok": True, "checks": [], "outcome": robust}},
            "submissions": {GRADED: {"judged": False, "checks": [], "outcome": outcome, "fidelity": own}}}


def test_the_card_rests_on_the_codes_own_proofs_when_there_are_some() -> None:
    good = grading.result_from_report(SCENARIOS["frozen-process"], GRADED,
                                      report([{"name": "the fault held", "ok": True, "detail": ":5001"}]))
    assert (good.verdict, good.fault_proven) == (gv.REPORTED, True)
    assert good.own_fidelity == [{"name": "the fault held", "ok": True, "detail": ":5001"}]
    bad = grading.result_from_report(SCENARIOS["frozen-process"], GRADED,
                                     report([{"name": "the fault held", "ok": False, "detail": ":5001: 2 RST"}]))
    assert (bad.verdict, bad.fault_proven) == (gv.INCONCLUSIVE, False)
    assert bad.reason.endswith("but the fault was not proven (on its own connection: the fault held: :5001: 2 RST)")
    text = grading.render_text(grading.ReportCard(submission="mine.py", impl="x", results=[bad]))
    assert "    [FAIL] (its own connection) the fault held: :5001: 2 RST" in text.splitlines()


class _Graded:
    impl, host, port = GRADED, "server", 7000
    _target_addr = ("10.0.0.3", 7000)


def _tables(monkeypatch: Any, *tables: set[int]) -> None:
    """The sandbox uid's connections to the server, one set per look at the kernel's table."""
    from lab.inlab import tcptable

    looks = iter(tables)
    monkeypatch.setattr(tcptable, "read", lambda: next(looks))
    monkeypatch.setattr(tcptable, "ports_of", lambda rows, uid, remote: set(rows))


def test_at_the_fault_a_connection_opened_since_the_last_exchange_is_not_the_conversation(monkeypatch: Any) -> None:
    # The red team's daemon: a connection of the same uid, open for a few ms just at the fault.
    ctx = runner.Context(SCENARIOS["frozen-process"], ["robust", GRADED])
    _tables(monkeypatch, {5000}, {5000, 5007})
    ctx._note_sandboxed_ports(_Graded())                     # its last exchange before the fault
    assert ctx._conversation_at_fault(GRADED, _Graded()) == {5000}
    assert ctx._client_ports[GRADED] == {5000, 5007}         # still every port it used, for the captures


def test_at_the_fault_a_connection_made_anew_counts_when_none_lasted(monkeypatch: Any) -> None:
    ctx = runner.Context(SCENARIOS["frozen-process"], ["robust", GRADED])
    _tables(monkeypatch, {5000}, {5003})
    ctx._note_sandboxed_ports(_Graded())
    assert ctx._conversation_at_fault(GRADED, _Graded()) == {5003}
    _tables(monkeypatch, {5004})                             # no exchange before the fault at all
    fresh = runner.Context(SCENARIOS["frozen-process"], ["robust", GRADED])
    assert fresh._conversation_at_fault(GRADED, _Graded()) == {5004}


def test_without_a_fault_point_its_conversation_is_the_first_connection_that_lasted_two_looks() -> None:
    # clean-close: the daemon's 5000 was open at the first look only; 5001 at both exchanges.
    ctx = context()
    ctx._port_looks = {GRADED: [{5000, 5001}, {5001}]}
    seen: list[tuple[list[str], set[int]]] = []
    ctx.prove_each(recording_proof(seen), True)
    assert seen[1] == ([GRADED], {5001})
    ctx._port_looks = {GRADED: [{5000}, {5001}, {5002}]}     # one connection per message: none lasted
    seen.clear()
    ctx.prove_each(recording_proof(seen), True)
    assert seen[1] == ([GRADED], {5000})
