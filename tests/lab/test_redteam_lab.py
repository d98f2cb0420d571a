"""Red team: hostile submissions, one per attack class, graded in the real lab.

Each file in tests/lab/redteam/ attacks the grader one way (its docstring says how, and
what its honest verdict is). Every test asserts two things: the card says exactly what the
code really does, never better; and the next submission graded after it (careful.py, on
the same scenarios) gets exactly the card it gets on a clean lab. The sandbox's own limits
and walls are tested in test_sandbox_lab.py; here they are met by code that means harm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.grading import verdicts as gv
from lab.grading.card import ReportCard, grade
from lab.host.engine import Runner
from lab.host.topology import Lab

HERE = Path(__file__).resolve().parent
REDTEAM = HERE / "redteam"
EXAMPLES = HERE.parents[1] / "examples" / "submissions"
WATCHDOG = 5.0
# What careful.py gets on these scenarios in a clean lab (tests/lab/test_grade_lab.py).
CAREFUL = {"clean-close": gv.REPORTED, "frozen-process": gv.REPORTED}

def verdicts(card: ReportCard) -> dict[str, str]:
    return {r.scenario: r.verdict for r in card.results}


def explain(card: ReportCard) -> str:
    return "\n".join(f"{r.scenario}: {r.verdict}: {r.reason}" for r in card.results)


def sandboxes(project: str) -> list[str]:
    res = Runner().run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                    "--filter", "label=com.docker.compose.service=sandbox", "--format", "{{.Names}}"], timeout=30)
    return [line for line in res.stdout.split() if line]


@pytest.fixture
def next_card_unchanged(lab: Lab) -> Iterator[None]:
    """After the attack: no sandbox is left, and careful code's card is exactly its clean-lab card."""
    yield
    assert sandboxes(lab.project) == []
    card = grade(lab, EXAMPLES / "careful.py", scenarios=sorted(CAREFUL), watchdog=WATCHDOG)
    assert verdicts(card) == CAREFUL, explain(card)


pytestmark = pytest.mark.usefixtures("healthy_before_and_reset_after", "next_card_unchanged")


def test_patching_the_judge_from_inside_changes_nothing_it_hangs(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "patches_the_judge.py", scenarios=["frozen-process"], watchdog=WATCHDOG)
    assert verdicts(card) == {"frozen-process": gv.HUNG}, explain(card)
    assert card.results[0].fault_proven is True


def test_dynamic_imports_and_ctypes_reach_only_the_sandbox_it_hangs(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "dynamic_imports.py", scenarios=["frozen-process"], watchdog=WATCHDOG)
    assert verdicts(card) == {"frozen-process": gv.HUNG}, explain(card)


@pytest.mark.timeout(240)   # it dawdles on purpose: every request it makes waits for an answer that never comes
def test_the_agents_toxiproxy_and_control_apis_do_not_answer_it(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "calls_the_apis.py", scenarios=["black-hole", "frozen-process"], watchdog=WATCHDOG)
    assert verdicts(card) == {"black-hole": gv.HUNG, "frozen-process": gv.HUNG}, explain(card)
    assert all(r.fault_proven for r in card.results), explain(card)


def test_it_cannot_learn_the_scenario_from_argv_env_or_proc(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "snoops_the_scenario.py", scenarios=["frozen-process", "server-restart"],
                 watchdog=WATCHDOG)
    # Knowing the name would have given "reported correctly" and "survived".
    assert verdicts(card) == {"frozen-process": gv.HUNG, "server-restart": gv.NO_RECOVERY}, explain(card)


def test_a_setsid_daemon_dies_with_its_scenario(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "leaves_a_daemon.py", scenarios=sorted(CAREFUL), watchdog=WATCHDOG)
    # Its class is careful: the daemon, not the class, is the attack, and it does not outlive the run.
    assert verdicts(card) == CAREFUL, explain(card)


def test_memory_processes_and_tmp_are_limited(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "exhausts_resources.py", scenarios=["clean-close"], watchdog=WATCHDOG)
    assert verdicts(card) == {"clean-close": gv.REPORTED}, explain(card)
    found = dict(re.findall(r"(\w+)=(\S+?)[\] ]", card.results[0].reason))
    assert found["tmp_error"] == "OSError:28", found        # ENOSPC
    assert int(found["tmp_mib"]) <= 64, found
    assert found["mem_child"] in ("signal9", "exit3"), found   # OOM-killed, or MemoryError
    assert found["fork_error"] == "BlockingIOError", found
    assert int(found["forks"]) < 64, found


def test_made_up_replies_are_corrupt_data(lab: Lab) -> None:
    card = grade(lab, REDTEAM / "fabricates_replies.py", scenarios=["latency"], watchdog=WATCHDOG)
    assert verdicts(card) == {"latency": gv.CORRUPT}, explain(card)
    assert "the server never sent" in card.results[0].reason, explain(card)
