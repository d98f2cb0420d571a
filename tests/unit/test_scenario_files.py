"""Scenario files: the catalogue loads, and a malformed file or an unknown name says exactly what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.inlab import scenario
from lab.inlab.scenario import Expect, Outcome, ScenarioError, UnknownScenario

GOOD = '''
from lab.inlab.scenario import Expect
NAME = "{name}"
TITLE = "A title"
HOWTO = "{howto}"
WIRE = "What happens on the wire."
INJECTION = "How the lab does it."
PATH = "{path}"
EXPECT = {expect}
REMEMBER = "One line."
def run(ctx):
    pass
'''


def write(tmp_path: Path, stem: str = "my_case", **fields: str) -> Path:
    values = {"name": stem.replace("_", "-"), "howto": "When Sockets Die", "path": "direct",
              "expect": '{"robust": Expect("error", ("PeerClosed",), within=1.0)}', **fields}
    path = tmp_path / f"{stem}.py"
    path.write_text(GOOD.format(**values))
    return path


def test_the_catalogue_loads_and_covers_the_issue() -> None:
    found = scenario.discover()
    required = {"clean-close", "process-crash", "host-vanishes", "frozen-process", "latency", "bandwidth",
                "fragmentation", "mid-message-cut", "reset", "black-hole", "slow-close", "packet-loss", "refused",
                "connect-black-hole", "server-restart", "half-close", "backpressure", "multiplexed-peer-death",
                "backlog-full", "write-after-reset"}
    assert required <= set(found)
    from lab.server.binding import BINDERS

    for s in found.values():
        # Every scenario judges robust, except those that judge server code (a binder) instead.
        assert "robust" in s.expect or set(s.expect) <= set(BINDERS), s.name
        assert s.howto in scenario.HOWTO_SECTIONS


def test_a_good_file_loads(tmp_path: Path) -> None:
    s = scenario.load(write(tmp_path))
    assert s.name == "my-case" and s.expect["robust"].errors == ("PeerClosed",)


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "Other"}, "NAME must be lowercase words"),
    ({"name": "other-name"}, "does not match the file name"),
    ({"howto": "Chapter 9"}, "HOWTO must name a section of the HOWTO"),
    ({"path": "sideways"}, "PATH must be one of direct, proxied; got 'sideways'"),
    ({"expect": "{}"}, "EXPECT must be a non-empty dict"),
    ({"expect": '{"fancy": Expect("completed")}'}, "EXPECT names unknown implementation 'fancy'"),
    ({"expect": '{"robust": Expect("exploded")}'}, "EXPECT['robust'].status must be one of completed, error, blocked"),
    ({"expect": '{"robust": Expect("error")}'}, "errors must name at least one exception"),
    ({"expect": '{"robust": Expect("error", ("X",), within=-1)}'}, "within must be a number of seconds > 0"),
    ({"expect": '{"robust": "fast"}'}, "EXPECT['robust'] must be an Expect; got str"),
])
def test_malformed_files_name_the_field_and_the_problem(tmp_path: Path, fields: dict[str, str], message: str) -> None:
    path = write(tmp_path, **fields)
    with pytest.raises(ScenarioError) as info:
        scenario.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_fields_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "bare.py"
    path.write_text('NAME = "bare"\n')
    with pytest.raises(ScenarioError, match="missing TITLE, HOWTO, WIRE, INJECTION, PATH, EXPECT, REMEMBER, run"):
        scenario.load(path)


def test_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text('NAME = "broken"\nTITLE = (\n')
    with pytest.raises(ScenarioError, match=r"broken.py: syntax error at line \d+"):
        scenario.load(path)


def test_a_file_whose_import_raises_is_a_one_line_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "raises.py"
    path.write_text('NAME = "raises"\n\nraise RuntimeError("no config\\nhere")\n')
    with pytest.raises(ScenarioError) as info:
        scenario.load(path)
    assert str(info.value) == f"{path}: importing it raised RuntimeError: no config here (line 3)"
    assert info.value.exit_code == 2


def test_survey_loads_the_good_files_and_returns_the_broken_ones(tmp_path: Path) -> None:
    write(tmp_path, "alpha")
    (tmp_path / "beta.py").write_text("import no_such_module_here\n")
    (tmp_path / "gamma_ray.py").write_text("def run(ctx)\n")
    found, broken = scenario.survey(tmp_path)
    assert list(found) == ["alpha"]
    assert {name: str(error) for name, error in broken.items()} == {
        "beta": f"{tmp_path / 'beta.py'}: importing it raised ModuleNotFoundError: No module named "
                "'no_such_module_here' (line 1)",
        "gamma-ray": f"{tmp_path / 'gamma_ray.py'}: syntax error at line 1: expected ':'"}
    with pytest.raises(ScenarioError, match="beta.py: importing it raised ModuleNotFoundError"):
        scenario.discover(tmp_path)   # the strict form: the first broken file


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "alpha")
    write(tmp_path, "beta")
    with pytest.raises(UnknownScenario, match="no scenario named 'gamma'; known scenarios: alpha, beta"):
        scenario.get("gamma", tmp_path)


def test_judge_error_within_bound_and_detail() -> None:
    expect = Expect("error", ("PeerUnresponsive",), within=4.0, detail={"detected_by": ("heartbeat", "keepalive")})
    good = Outcome("robust", status="error", error="PeerUnresponsive", ended_at=5.0,
                   facts={"detected_by": "heartbeat"})
    assert all(c.ok for c in scenario.judge(expect, good, fault_at=2.0))
    late = Outcome("robust", status="error", error="PeerUnresponsive", ended_at=6.5, facts={"detected_by": "heartbeat"})
    failed = {c.name for c in scenario.judge(expect, late, fault_at=2.0) if not c.ok}
    assert failed == {"time bound"}
    wrong = Outcome("robust", status="error", error="PeerClosed", ended_at=2.1, facts={"detected_by": "read-deadline"})
    failed = {c.name for c in scenario.judge(expect, wrong, fault_at=2.0) if not c.ok}
    assert failed == {"outcome", "detected_by"}


def test_judge_blocked_and_corrupt() -> None:
    assert all(c.ok for c in scenario.judge(Expect("blocked"), Outcome("naive", status="blocked"), fault_at=1.0))
    not_blocked = scenario.judge(Expect("blocked"), Outcome("naive", status="completed", ended_at=1.5), fault_at=1.0)
    assert not all(c.ok for c in not_blocked)
    truncating = Expect("completed", corrupt=True)
    assert all(c.ok for c in scenario.judge(truncating, Outcome("x", corrupt=2), fault_at=None))
    assert not all(c.ok for c in scenario.judge(truncating, Outcome("x", corrupt=0), fault_at=None))
    # The default: any corrupt reply fails the implementation.
    assert not all(c.ok for c in scenario.judge(Expect("completed"), Outcome("x", corrupt=1), fault_at=None))
