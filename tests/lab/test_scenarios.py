"""Every scenario, in the real lab, both implementations: the fault is proven, then every oracle holds.

Each test runs one scenario through the in-lab runner (the same path as
``lab run NAME`` and ``docker compose run``) and asserts its whole report:
the fidelity checks (the fault really happened: RSTs seen, packets dropped,
exact byte counts) and, per implementation, the outcome, the error type, the
time bound and every scenario-specific figure (RTT, throughput, exactly-once
counts). A failing check is shown by name with its measured value.
"""

from __future__ import annotations


import pytest

from lab.inlab import scenario
from lab.host.runner_handle import failed_checks, run_scenario
from lab.host.topology import Lab

SCENARIOS = scenario.discover()


pytestmark = pytest.mark.usefixtures("healthy_before_and_reset_after")

# The Toxiproxy scenarios prove their toxic by what it did on the wire, on the subjects' own
# connections and in magnitude, not by Toxiproxy listing it: these proofs must be there and hold.
WIRE_PROOFS = {
    "latency": ("on the wire every round trip after the toxic took 200 ms", "the 200 ms sat on the server's replies"),
    "bandwidth": ("on the wire the proxy passed the client's bytes to the server at 500 KB/s",),
    "mid-message-cut": ("on the wire the proxy's stream stopped at exactly 2526 bytes",),
    "reset": ("the proxy reset every connection when the server's reply reached it",),
    "fragmentation": ("on the wire the proxy sent the replies in pieces of 64±32 B",),
    "black-hole": ("after the fault the proxy ACKed every byte the client sent",
                   "the server's answers after the fault reached the proxy"),
    "slow-close": ("on the wire the proxy passed the server's FIN on 1000 ms late",),
}


def assert_wire_proofs(report: dict, name: str) -> None:
    held = [c["name"] for c in report["fidelity"] if c["ok"] and c["detail"]]
    for wanted in WIRE_PROOFS.get(name, ()):
        assert any(n.startswith(wanted) for n in held), f"{name}: no proof {wanted!r} held; held: {held}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(lab: Lab, name: str, request: pytest.FixtureRequest) -> None:
    chosen = SCENARIOS[name]
    request.node.add_marker(pytest.mark.timeout((chosen.watchdog or 10) + 120))
    report = run_scenario(lab, name)
    assert set(report["verdicts"]) == set(chosen.expect), "every judged implementation ran"
    assert report["fidelity"], "a scenario must prove its fault happened"
    problems = failed_checks(report)
    assert not problems, "\n".join(problems)
    assert report["ok"] is True
    assert_wire_proofs(report, name)


@pytest.mark.parametrize("impl", ["naive", "naive-single-recv"])
def test_fragmentation_is_proven_on_the_wire_whichever_implementation_ran(lab: Lab, impl: str) -> None:
    # The slicer's proof reads the proxy's segments, not robust's recv calls: any one implementation proves it.
    report = run_scenario(lab, "fragmentation", impls=[impl])
    assert not failed_checks(report), "\n".join(failed_checks(report))
    assert_wire_proofs(report, "fragmentation")
