"""Every robust time bound in a scenario is derived from RobustConfig().bounds(), or says it is not.

A scenario writes ``within=bound("connect", 0.5)`` (the default config's connect bound plus
a margin it states) or ``within=fixed(1.0)`` (nothing in the config implies it: the kernel
delivers a FIN or an RST at once). A bare number would restate the config and drift from it.
"""

from __future__ import annotations

import pytest

from lab.inlab import scenario
from lab.inlab.scenario import Bound
from lab.sockets.robust import RobustConfig

# The robust errors that a RobustConfig deadline produces, and the bounds that time them.
DEADLINE_ERRORS = {
    "ConnectTimeout": {"connect"},
    "SendStalled": {"send_stall"},
    "PeerUnresponsive": {"frozen_peer", "stuck_reply", "idle_peer_gone", "unacked_data"},
}


def _robust_bounds() -> dict[str, scenario.Expect]:
    return {name: s.expect["robust"] for name, s in scenario.discover().items()
            if "robust" in s.expect and s.expect["robust"].within is not None}


def test_some_scenarios_derive_their_bound() -> None:
    derived = [name for name, e in _robust_bounds().items() if isinstance(e.within, Bound) and e.within.key]
    assert len(derived) >= 5, derived


@pytest.mark.parametrize("name", sorted(_robust_bounds()))
def test_every_robust_bound_equals_the_bound_it_claims(name: str) -> None:
    expect = _robust_bounds()[name]
    within = expect.within
    assert isinstance(within, Bound), (
        f"{name}: EXPECT['robust'].within is a bare {within!r}; write bound(KEY, margin) or fixed(seconds)")
    assert within.margin >= 0
    if within.key is None:
        assert within.margin == 0
        deadline = [e for e in expect.errors if e in DEADLINE_ERRORS]
        assert not deadline, f"{name}: {deadline} come from a RobustConfig deadline; derive the bound with bound()"
        return
    bounds = RobustConfig().bounds()
    assert bounds[within.key] is not None
    assert within == bounds[within.key] + within.margin, (
        f"{name}: within {within:g} s, but RobustConfig().bounds()[{within.key!r}] + {within.margin:g} "
        f"= {bounds[within.key] + within.margin:g} s")
    for error in expect.errors:
        assert within.key in DEADLINE_ERRORS.get(error, {within.key}), (
            f"{name}: {error} is not timed by {within.key!r}; it is timed by {DEADLINE_ERRORS[error]}")


def test_a_change_to_the_config_moves_the_scenarios_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _robust_bounds()
    defaults = RobustConfig.bounds

    def doubled(self: RobustConfig) -> dict[str, float | None]:
        return {k: None if v is None else 2 * v for k, v in defaults(self).items()}

    monkeypatch.setattr(RobustConfig, "bounds", doubled)
    after = _robust_bounds()  # the scenario files are imported afresh, so bound() sees the new config
    assert set(after) == set(before)
    for name, expect in after.items():
        old = before[name].within
        assert isinstance(old, Bound) and isinstance(expect.within, Bound)
        if old.key is None:
            assert expect.within == old, name
        else:
            assert expect.within == 2 * (old - old.margin) + old.margin, name


def test_bound_refuses_a_bound_the_config_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RobustConfig, "bounds", lambda self: {"connect": None})
    with pytest.raises(scenario.ScenarioError, match=r"\['connect'\] is off"):
        scenario.bound("connect")


def test_a_bound_reads_as_the_plain_number() -> None:
    import dataclasses
    import json

    b = scenario.bound("connect", 0.5)
    assert b == RobustConfig().bounds()["connect"] + 0.5 and f"{b:g}" == f"{float(b):g}"
    copied = dataclasses.asdict(scenario.Expect("error", ("ConnectTimeout",), within=b))["within"]
    assert (copied, copied.key, copied.margin) == (b, "connect", 0.5)
    assert json.dumps({"within": b}) == json.dumps({"within": float(b)})
