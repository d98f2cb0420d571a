"""lab.grading.verdicts, judged against what the server really received: made-up replies, messages
delivered twice, data lost without an error, a protocol mismatch the server rejected, a correct report
that did not recover, a workload that never reached its fault; the order of those rules; and the old
rules, which still hold."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from lab.grading import card as grading
from lab.grading import verdicts as gv
from lab.inlab import runreport, scenario
from lab.inlab.scenario import Expect
from lab.sockets.framing import encode_data

SCENARIOS = scenario.discover()
COMPLETES = Expect("completed")
REPORTS = Expect("error", ("PeerClosed",), within=1.0)
FAULT = 10.0   # the fault happened 10 s into the run: times are measured from it

FRAME = encode_data(1, b"x" * 19)                     # what the lab handed the code: 00 00 00 1b 02 ...
PREFIXED = struct.pack("!I", len(FRAME)) + FRAME       # what the code sent: a length in front of it
BAD_TYPE_0 = "unknown frame type 0 in header 0000002000; accepted: HELLO=1, DATA=2, ECHO=3, PING=4, PONG=5"
REJECTED = {"head": PREFIXED.hex(), "expected_head": FRAME.hex(), "error": BAD_TYPE_0,
            "answer": "closed the connection"}
MISMATCH_REASON = ("the server rejected what was sent: it expected a DATA frame (first bytes 00 00 00 1b 02 ...) "
                   f"and got 00 00 00 20 00 00 00 1b ...: {BAD_TYPE_0}; it closed the connection")


def outcome(status: str, *, error: str | None = None, ended_at: float | None = None, corrupt: int = 0,
            exchanges_ok: int = 2, message: str = "", **facts: Any) -> dict[str, Any]:
    return {"status": status, "error": error, "ended_at": ended_at, "corrupt": corrupt, "exchanges_ok": exchanges_ok,
            "message": message, "facts": facts}


def decide(robust: Expect, got: dict[str, Any], **kw: Any) -> tuple[str, str]:
    v = gv.decide(robust, got, fault_at=FAULT, watchdog=10.0, **kw)
    return v.verdict, v.reason


# Each new rule, with its exact words --------------------------------------------------------------------------
def test_replies_the_server_never_sent_are_corrupt_data_made_up_by_the_code() -> None:
    assert decide(COMPLETES, outcome("completed", ended_at=FAULT + 1, fabricated=3)) == (
        gv.CORRUPT, "3 replies the server never sent (made up by the code)")
    assert decide(REPORTS, outcome("error", error="PeerClosed", ended_at=FAULT + 0.1, fabricated=1)) == (
        gv.CORRUPT, "1 reply the server never sent (made up by the code)")


def test_a_message_the_server_received_twice_is_delivered_twice() -> None:
    assert decide(COMPLETES, outcome("completed", ended_at=FAULT + 1, duplicated=2)) == (
        gv.DUPLICATED, "the server received 2 messages more than once (exactly-once broken)")
    assert decide(COMPLETES, outcome("completed", ended_at=FAULT + 1, duplicated=1)) == (
        gv.DUPLICATED, "the server received 1 message more than once (exactly-once broken)")


def test_a_send_reported_done_that_never_arrived_is_lost_data() -> None:
    assert decide(COMPLETES, outcome("completed", ended_at=FAULT + 1, lost=4)) == (
        gv.LOST, "4 messages the code reported sent never reached the server, and it raised no error (lost silently)")


def test_a_rejected_frame_is_a_protocol_mismatch_that_quotes_both_sides_and_the_code_s_own_crash() -> None:
    crash = outcome("error", error="error", message="unpack requires a buffer of 4 bytes", ended_at=FAULT + 0.1,
                    rejected=REJECTED)
    assert decide(REPORTS, crash) == (
        gv.MISMATCH, f"{MISMATCH_REASON} (the code then raised error: unpack requires a buffer of 4 bytes)")
    # A programming error after the rejection is explained by it too, and so is a hang.
    assert decide(REPORTS, outcome("error", error="TypeError", ended_at=FAULT, rejected=REJECTED)) == (
        gv.MISMATCH, f"{MISMATCH_REASON} (the code then raised TypeError)")
    assert decide(COMPLETES, outcome("blocked", rejected=REJECTED)) == (gv.MISMATCH, MISMATCH_REASON)


def test_a_mismatch_says_what_it_knows_when_facts_are_missing_or_short() -> None:
    assert gv.mismatch({"head": "000102", "error": "cut"}) == "the server rejected what was sent: it got 00 01 02: cut"
    assert gv.mismatch({"head": "", "expected_head": "0000000904"}) == (
        "the server rejected what was sent: it expected a PING frame (first bytes 00 00 00 09 04) and got nothing")
    assert gv.mismatch({"head": "0000000000000000ff", "expected_head": "00000009ee", "answer": "reset it"}) == (
        "the server rejected what was sent: it expected a frame (first bytes 00 00 00 09 ee) and got "
        "00 00 00 00 00 00 00 00 ...; it reset it")


def test_a_network_error_where_careful_code_completes_is_reported_did_not_recover() -> None:
    v = gv.decide(COMPLETES, outcome("error", error="RuntimeError", message="socket connection broken",
                                     ended_at=FAULT + 0.3), fault_at=FAULT, watchdog=10.0)
    assert (v.verdict, v.reason, v.took_s) == (
        gv.NO_RECOVERY, "raised RuntimeError: socket connection broken — a correct report, but careful code "
                        "reconnects and completes", 0.3)
    assert decide(COMPLETES, outcome("error", error="BrokenMessage", ended_at=FAULT + 0.3))[0] == gv.NO_RECOVERY


def test_a_programming_error_where_careful_code_completes_is_still_a_crash() -> None:
    assert decide(COMPLETES, outcome("error", error="AttributeError", message="'NoneType' object has no attribute "
                                                                               "'recv'", ended_at=FAULT)) == (
        gv.CRASHED, "raised AttributeError: 'NoneType' object has no attribute 'recv' (a bug in the code, not a "
                    "report of the failure)")


@pytest.mark.parametrize("error", ["DriverProtocolError", "DriverExited"])
@pytest.mark.parametrize("robust", [COMPLETES, REPORTS])
def test_breaking_the_driver_protocol_or_exiting_is_a_crash(error: str, robust: Expect) -> None:
    assert decide(robust, outcome("error", error=error, message="exit status 3", ended_at=FAULT + 0.1)) == (
        gv.CRASHED, f"raised {error}: exit status 3 (a bug in the code, not a report of the failure)")


REACH = "the workload did not reach the fault: the code moved 1000 of the 5000 bytes the fault needs"


@pytest.mark.parametrize(("robust", "got", "would_be"), [
    (COMPLETES, outcome("completed", ended_at=FAULT + 1, bytes_sent=1000), gv.SURVIVED),
    (REPORTS, outcome("error", error="PeerClosed", ended_at=FAULT + 0.2, bytes_sent=1000), gv.REPORTED),
    (REPORTS, outcome("completed", ended_at=FAULT + 0.2, bytes_sent=1000), gv.MISSED),
])
def test_a_good_or_missed_verdict_short_of_the_fault_s_bytes_is_inconclusive(robust: Expect, got: dict[str, Any],
                                                                             would_be: str) -> None:
    assert decide(robust, got)[0] == would_be
    assert decide(robust, got, reach_bytes=5000) == (gv.INCONCLUSIVE, REACH)
    assert decide(robust, got, reach_bytes=1000)[0] == would_be   # exactly enough reaches it


@pytest.mark.parametrize(("robust", "got", "verdict"), [
    (REPORTS, outcome("blocked", bytes_sent=1000), gv.HUNG),
    (REPORTS, outcome("error", error="PeerClosed", ended_at=FAULT + 1.6, bytes_sent=1000), gv.LATE),
    (REPORTS, outcome("error", error="KeyError", ended_at=FAULT + 0.2, bytes_sent=1000), gv.CRASHED),
    (COMPLETES, outcome("error", error="OSError", ended_at=FAULT + 0.2, bytes_sent=1000), gv.NO_RECOVERY),
    (COMPLETES, outcome("completed", ended_at=FAULT + 1, corrupt=1, bytes_sent=1000), gv.CORRUPT),
    (COMPLETES, outcome("completed", ended_at=FAULT + 1), gv.SURVIVED),               # bytes_sent not reported
    (COMPLETES, outcome("completed", ended_at=FAULT + 1, bytes_sent=True), gv.SURVIVED),  # not a count
])
def test_other_verdicts_stand_whatever_the_bytes_moved(robust: Expect, got: dict[str, Any], verdict: str) -> None:
    assert decide(robust, got, reach_bytes=5000)[0] == verdict


# The order between the rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("got", "verdict", "reason_starts"), [
    (outcome("blocked", error="ImportTimeout", message="x.py", phase="import", fabricated=1, rejected=REJECTED),
     gv.HUNG, "never finished importing"),
    (outcome("completed", corrupt=2, fabricated=1, duplicated=1), gv.CORRUPT, "1 reply the server never sent"),
    (outcome("completed", corrupt=2, duplicated=1, lost=1), gv.CORRUPT, "2 replies differed from what was sent"),
    (outcome("completed", duplicated=1, lost=1, rejected=REJECTED), gv.DUPLICATED, "the server received 1 message"),
    (outcome("completed", lost=1, rejected=REJECTED), gv.LOST, "1 message the code reported sent"),
    (outcome("blocked", rejected=REJECTED), gv.MISMATCH, "the server rejected what was sent"),
    (outcome("completed", fabricated=0, duplicated=0, lost=0), gv.SURVIVED, "completed, 2 replies intact"),
])
def test_import_then_made_up_then_corrupt_then_twice_then_lost_then_mismatch_then_the_rest(
        got: dict[str, Any], verdict: str, reason_starts: str) -> None:
    v, reason = decide(COMPLETES, got)
    assert v == verdict and reason.startswith(reason_starts), reason


def test_verdicts_run_best_to_worst_with_the_new_ones_in_place() -> None:
    assert gv.VERDICTS == ("survived", "reported correctly", "reported late", "reported, did not recover",
                           "missed the failure", "hung", "protocol mismatch", "lost data", "delivered twice",
                           "returned corrupt data", "crashed", "inconclusive")
    assert gv.GOOD == frozenset({"survived", "reported correctly"})
    assert gv.VERDICTS.index(gv.NO_RECOVERY) < gv.VERDICTS.index(gv.CRASHED)
    assert (gv.NO_RECOVERY, gv.DUPLICATED, gv.LOST, gv.MISMATCH) == (
        "reported, did not recover", "delivered twice", "lost data", "protocol mismatch")


# The old rules still hold ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("robust", "got", "verdict"), [
    (COMPLETES, outcome("completed", ended_at=FAULT + 1), gv.SURVIVED),
    (COMPLETES, outcome("completed", ended_at=FAULT + 1, corrupt=1), gv.CORRUPT),
    (COMPLETES, outcome("blocked"), gv.HUNG),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT + 0.2), gv.REPORTED),
    (REPORTS, outcome("error", error="TimeoutError", ended_at=FAULT + 1.5), gv.REPORTED),     # bound + slack
    (REPORTS, outcome("error", error="TimeoutError", ended_at=FAULT + 1.6), gv.LATE),
    (REPORTS, outcome("completed", ended_at=FAULT + 0.2), gv.MISSED),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT + 0.2, corrupt=1), gv.CORRUPT),
    (REPORTS, outcome("error", error="AttributeError", ended_at=FAULT + 0.2), gv.CRASHED),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT - 0.5), gv.CRASHED),
    (REPORTS, outcome("error", error="KeyError", phase="import"), gv.CRASHED),
    (Expect("blocked"), outcome("completed", ended_at=FAULT), gv.INCONCLUSIVE),
])
def test_the_old_rules_still_hold(robust: Expect, got: dict[str, Any], verdict: str) -> None:
    assert decide(robust, got)[0] == verdict


def test_an_old_reason_is_word_for_word_the_same() -> None:
    got = outcome("error", error="TimeoutError", message="timed out", ended_at=FAULT + 1.75)
    assert decide(REPORTS, got) == (gv.LATE, "raised TimeoutError: timed out, 1.75 s after the fault; bound 1.5 s "
                                             "(careful code reports PeerClosed within 1 s)")
    early = outcome("error", error="ConnectionResetError", ended_at=FAULT + 0.1, exchanges_ok=1)
    assert decide(REPORTS, early, reference_exchanges=2) == (
        gv.CRASHED, "raised ConnectionResetError after 1 intact replies; careful code got 2 before the failure")


def test_predictions_follow_the_new_rule_where_careful_code_reconnects() -> None:
    assert gv.predicted(SCENARIOS["server-restart"], "naive").verdict == gv.NO_RECOVERY
    assert gv.predicted(SCENARIOS["server-restart"], "robust").verdict == gv.SURVIVED
    assert gv.predicted(SCENARIOS["clean-close"], "naive").verdict == gv.REPORTED


# The card reads the scenario's reach from the runner's report --------------------------------------------------
FILE = "sandbox:mine-0001"


def report(sub: dict[str, Any], scenario_summary: dict[str, Any]) -> dict[str, Any]:
    robust = outcome("error", error="PeerClosed", ended_at=FAULT + 0.1)
    return {"schema_version": runreport.SCHEMA_VERSION, "scenario": scenario_summary, "ok": True, "timeline": [],
            "bounds": {}, "fault_at": FAULT, "watchdog_s": 10.0, "aborted": None,
            "fidelity": [{"name": "the server sent a FIN", "ok": True, "detail": "FIN 1"}], "fidelity_ok": True,
            "facts": {}, "verdicts": {"robust": {"ok": True, "checks": [], "outcome": robust}},
            "submissions": {FILE: {"judged": False, "checks": [], "outcome": sub}}}


def test_result_from_report_passes_the_scenario_s_reach_bytes() -> None:
    sub = outcome("error", error="RuntimeError", ended_at=FAULT + 0.05, bytes_sent=10)
    short = grading.result_from_report(SCENARIOS["clean-close"], FILE,
                                       report(sub, {"name": "clean-close", "reach_bytes": 1_000_000}))
    assert (short.verdict, short.reason) == (
        gv.INCONCLUSIVE, "the workload did not reach the fault: the code moved 10 of the 1000000 bytes the fault needs")
    for summary in ({"name": "clean-close"}, {"name": "clean-close", "reach_bytes": None},
                    {"name": "clean-close", "reach_bytes": 10}):
        assert grading.result_from_report(SCENARIOS["clean-close"], FILE, report(sub, summary)).verdict == gv.REPORTED
