"""The mutation suite in the real lab: a weakened fault must fail a fidelity proof, not only an oracle.

The whole suite (every mutant of lab/inlab/mutants.py in every scenario using its fault) is
``./labw selftest``; it takes several minutes, so the test suite runs a representative sample:
at least one mutant of each kind of fault (iptables rule, process signal, server behaviour,
Toxiproxy toxic) and of each kind of weakening (no-op, wrong target, one direction, a tenth of
the magnitude, a harmless signal, toxicity 0), in scenarios that take a few seconds each.
"""

from __future__ import annotations

import pytest

from lab.host import selftest
from lab.host.runner_handle import run_scenario
from lab.host.topology import Lab
from lab.inlab import mutants

pytestmark = pytest.mark.usefixtures("healthy_before_and_reset_after")

SAMPLE = [
    ("syn-drop:no-op", "connect-black-hole"),        # iptables, does nothing
    ("reject:drop", "write-after-reset"),            # iptables, silent instead of RST
    ("loss:tenth", "packet-loss"),                   # iptables, a tenth of the magnitude
    ("crash:cont", "process-crash"),                 # a harmless signal for a deadly one
    ("freeze:wrong-server", "frozen-process"),       # the other server
    ("refuse:no-op", "refused"),
    ("behave:wrong-server", "clean-close"),          # the server nobody is talking to
    ("latency:toxicity-0", "latency"),               # listed by Toxiproxy, applied to nobody
    ("limit-data:later", "mid-message-cut"),         # the cut after the workload ends
    ("reset-peer:wrong-proxy", "reset"),
]


def test_the_sample_covers_every_kind_of_fault_and_names_real_mutants() -> None:
    assert {mutants.get(key).fault for key, _ in SAMPLE} >= {"syn-drop", "loss", "crash", "behave", "latency"}
    assert {key.split(":")[1] for key, _ in SAMPLE} >= {"no-op", "wrong-server", "tenth", "toxicity-0", "cont"}


@pytest.mark.parametrize(("key", "name"), SAMPLE, ids=[f"{k}@{n}" for k, n in SAMPLE])
def test_a_weakened_fault_fails_a_fidelity_proof(lab: Lab, key: str, name: str) -> None:
    report = run_scenario(lab, name, mutant=key)
    assert report["facts"].get("mutant") == key, "the runner ran the mutant it was asked for"
    caught, by = selftest.classify(report, mutants.get(key).fault)
    assert caught == "proof", f"{key} in {name}: {caught}: {by}"
    assert report["ok"] is False and report["fidelity_ok"] is False and report["aborted"] is None
