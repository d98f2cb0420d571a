"""Grading in the real lab: submissions of known quality get exactly their verdicts, and the lab survives them.

Each submission is graded on a small set of fast scenarios (frozen-process with a
5 s watchdog), so the whole file stays near a minute of lab time. The built-ins
are graded too, and their verdicts must be the ones their scenarios' oracles
predict (lab.grading.verdicts.predicted), measured, not assumed. The last tests show
that nothing a bad submission did is left behind: the lab is healthy, no file or
runner process remains in the client, and an ordinary scenario still passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.grading import verdicts as gv
from lab.inlab import scenario
from lab.host.build import build_go
from lab.host.engine import Result, Runner
from lab.grading.card import ReportCard, grade
from lab.host.runner_handle import failed_checks, run_scenario
from lab.host.topology import HEALTHCHECKED, SERVICES, Lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
FAST = ["clean-close", "refused", "mid-message-cut", "fragmentation", "frozen-process"]
WATCHDOG = 5.0
SCENARIOS = scenario.discover()


class CountingLab:
    """The real lab, counting every command sent into it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.calls: list[list[str]] = []

    def exec(self, service: str, argv: list[str], **kwargs: Any) -> Result:
        self.calls.append(list(argv))
        return self.lab.exec(service, argv, **kwargs)


pytestmark = pytest.mark.usefixtures("healthy_before_and_reset_after")


def verdicts(card: ReportCard) -> dict[str, str]:
    return {r.scenario: r.verdict for r in card.results}


def explain(card: ReportCard) -> str:
    return "\n".join(f"{r.scenario}: {r.verdict}: {r.reason}" for r in card.results)


def test_careful_code_reports_correctly_in_bounded_time_or_survives(lab: Lab) -> None:
    card = grade(lab, EXAMPLES / "careful.py", scenarios=FAST, watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.REPORTED, "refused": gv.REPORTED, "mid-message-cut": gv.REPORTED,
                              "fragmentation": gv.SURVIVED, "frozen-process": gv.REPORTED}, explain(card)
    assert card.verdict == "passed"
    frozen = card.results[-1]
    # Its own 3 s deadline, not the watchdog, ended the wait.
    assert frozen.error == "TimeoutError" and 2.5 <= frozen.took_s <= frozen.bound_s == 4.5, explain(card)
    assert all(r.fault_proven for r in card.results), explain(card)


def test_the_howto_fixed_length_code_hangs_only_on_a_frozen_peer(lab: Lab) -> None:
    chosen = ["clean-close", "mid-message-cut", "fragmentation", "frozen-process"]
    card = grade(lab, EXAMPLES / "howto_fixed.py", scenarios=chosen, watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.REPORTED, "mid-message-cut": gv.REPORTED,
                              "fragmentation": gv.SURVIVED, "frozen-process": gv.HUNG}, explain(card)
    assert (card.framing, card.msglen, card.verdict) == ("fixed", 1024, "failed")


def test_single_recv_returns_corrupt_data_when_replies_are_fragmented(lab: Lab) -> None:
    card = grade(lab, EXAMPLES / "single_recv.py", scenarios=["fragmentation"])
    assert verdicts(card) == {"fragmentation": gv.CORRUPT}, explain(card)


def test_code_that_hangs_at_import_is_graded_hung_without_wedging_the_lab(lab: Lab) -> None:
    card = grade(lab, EXAMPLES / "hangs_at_import.py", scenarios=["clean-close", "refused"])
    assert verdicts(card) == {"clean-close": gv.HUNG, "refused": gv.HUNG}, explain(card)
    assert "did not finish within 5 s" in card.results[0].reason


def test_code_that_raises_at_import_is_graded_crashed_with_the_exception(lab: Lab) -> None:
    card = grade(lab, EXAMPLES / "raises_at_import.py", scenarios=["clean-close", "refused"])
    assert verdicts(card) == {"clean-close": gv.CRASHED, "refused": gv.CRASHED}, explain(card)
    assert "KeyError while importing raises_at_import_" in card.results[0].reason
    assert "at line 11: 'MY_SERVER_ADDRESS'" in card.results[0].reason


def test_a_syntax_error_is_refused_without_touching_the_lab(lab: Lab) -> None:
    counting = CountingLab(lab)
    card = grade(counting, EXAMPLES / "syntax_error.py", scenarios=FAST)  # type: ignore[arg-type]
    assert (card.verdict, card.reason) == ("invalid", "syntax_error.py: syntax error at line 16: expected ':'")
    assert counting.calls == []


@pytest.mark.parametrize(("impl", "chosen"), [("naive", ["clean-close", "frozen-process"]),
                                              ("robust", ["clean-close", "fragmentation"])])
def test_the_builtins_get_the_verdicts_their_scenarios_predict(lab: Lab, impl: str, chosen: list[str]) -> None:
    card = grade(lab, impl, scenarios=chosen, watchdog=WATCHDOG)
    predicted = {name: gv.predicted(SCENARIOS[name], impl).verdict for name in chosen}
    assert verdicts(card) == predicted, explain(card)
    expected = {"naive": {"clean-close": gv.REPORTED, "frozen-process": gv.HUNG},
                "robust": {"clean-close": gv.REPORTED, "fragmentation": gv.SURVIVED}}[impl]
    assert predicted == expected


# Honest code the lab once judged wrong (issue 10), and compiled code -----------------------------------
HONEST = Path(__file__).resolve().parent / "honest"


def test_the_howtos_class_with_small_messages_meets_the_cut_and_the_limit(lab: Lab) -> None:
    card = grade(lab, HONEST / "fixed_64.py", scenarios=["mid-message-cut", "bandwidth"], watchdog=30.0)
    # Once "inconclusive" (three 64-byte exchanges never reached the cut) and "survived" (the 1 MiB
    # body cut to 51 bytes): now the data goes out as consecutive 64-byte messages.
    assert verdicts(card) == {"mid-message-cut": gv.REPORTED, "bandwidth": gv.SURVIVED}, explain(card)
    assert (card.framing, card.msglen) == ("fixed", 64)
    assert all(r.fault_proven for r in card.results), explain(card)


def test_a_protocol_mismatch_is_named_with_what_was_sent_and_the_servers_answer(lab: Lab) -> None:
    card = grade(lab, HONEST / "extra_length_prefix.py", scenarios=["clean-close"], watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.MISMATCH}, explain(card)
    reason = card.results[0].reason
    assert reason.startswith("the server rejected what was sent"), reason
    assert "closed the connection" in reason and "unpack requires a buffer of 4 bytes" in reason, reason


def test_code_that_resends_everything_after_a_reconnect_is_caught_delivering_twice(lab: Lab) -> None:
    card = grade(lab, HONEST / "resends_everything.py", scenarios=["server-restart"], watchdog=WATCHDOG)
    # Every reply it returned was real and it completed: only the server's record shows the duplicates.
    assert verdicts(card) == {"server-restart": gv.DUPLICATED}, explain(card)
    assert "more than once (exactly-once broken)" in card.results[0].reason, explain(card)


@pytest.fixture(scope="module")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("go")
    return {name: build_go(EXAMPLES / "go" / name, out / f"{name}-go") for name in ("careful", "naive")}


# Both on one worker under pytest-xdist (--dist loadgroup): the Go build, a module fixture, is made once.
@pytest.mark.xdist_group("go")
def test_a_compiled_careful_client_gets_careful_verdicts(lab: Lab, go_programs: dict[str, Path]) -> None:
    card = grade(lab, go_programs["careful"], scenarios=FAST, watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.REPORTED, "refused": gv.REPORTED, "mid-message-cut": gv.REPORTED,
                              "fragmentation": gv.SURVIVED, "frozen-process": gv.REPORTED}, explain(card)
    assert (card.framing, card.msglen, card.verdict) == ("length-prefixed", None, "passed")
    frozen = card.results[-1]
    assert frozen.error == "TimeoutError" and 2.5 <= frozen.took_s <= frozen.bound_s == 4.5, explain(card)


@pytest.mark.xdist_group("go")
def test_a_compiled_naive_client_gets_the_howto_class_verdicts(lab: Lab, go_programs: dict[str, Path]) -> None:
    chosen = ["clean-close", "mid-message-cut", "fragmentation", "frozen-process"]
    card = grade(lab, go_programs["naive"], scenarios=chosen, watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.REPORTED, "mid-message-cut": gv.REPORTED,
                              "fragmentation": gv.SURVIVED, "frozen-process": gv.HUNG}, explain(card)
    assert (card.framing, card.msglen) == ("fixed", 1024)


def test_afterwards_the_lab_is_healthy_and_clean_and_a_normal_scenario_passes(lab: Lab) -> None:
    rows = lab.status()
    assert len(rows) == len(SERVICES) and all(r.get("State") == "running" for r in rows), rows
    # One healthcheck per namespace (the agents) and Toxiproxy's: each of those says healthy.
    assert {r.get("Service"): r.get("Health") for r in rows if r.get("Service") in HEALTHCHECKED} == \
        {name: "healthy" for name in HEALTHCHECKED}, rows
    left = Runner().run(["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={lab.project}",
                         "--filter", "label=com.docker.compose.oneoff=True"], timeout=30)
    assert left.returncode == 0 and left.stdout.strip() == "", f"sandbox containers left behind: {left.stdout}"
    procs = lab.exec("client", ["ps", "-eo", "args"], timeout=30)
    assert procs.returncode == 0, procs.stderr
    assert "lab.inlab.runner" not in procs.stdout, f"a runner process is still alive:\n{procs.stdout}"
    report = run_scenario(lab, "clean-close")
    assert not failed_checks(report), "\n".join(failed_checks(report))
    assert report["ok"] is True
