"""The Toxiproxy faults' mutants: each toxic has a weaker or misdirected variant besides the no-op, and
removing a mutated toxic finds it where it was added."""

from __future__ import annotations

from typing import Any

import pytest

from lab.inlab import mutants


class FakeToxiproxy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, str], dict[str, Any]]] = []

    def add_toxic(self, proxy: str, kind: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(("add_toxic", (proxy, kind), fields))
        return {}

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls.append(("remove_toxic", (proxy, name), {}))


class FakeContext:
    def __init__(self) -> None:
        self.server_agent = None
        self.toxiproxy = FakeToxiproxy()

    def mark(self, actor: str, what: str, **facts: Any) -> float:
        return 0.0

TOXICS = ("latency", "bandwidth", "limit-data", "reset-peer", "slicer", "slow-close", "timeout")


@pytest.mark.parametrize("fault", TOXICS)
def test_every_toxic_has_the_common_mutants_and_one_that_does_less(fault: str) -> None:
    names = [m.name for m in mutants.for_fault(fault)]
    assert names[:3] == ["no-op", "toxicity-0", "wrong-proxy"]
    assert len(names) >= 4, f"{fault}: a magnitude or direction mutant besides the common three"


@pytest.mark.parametrize("key", ["latency:tenth", "slow-close:tenth", "reset-peer:late", "timeout:closes",
                                 "timeout:other-stream", "latency:wrong-proxy"])
def test_a_mutated_toxic_is_removed_from_the_proxy_it_was_added_to(key: str) -> None:
    ctx = FakeContext()
    mutated = mutants.MutatedContext(ctx, mutants.get(key)).toxiproxy
    mutated.add_toxic("threaded", "x", stream="downstream", toxicity=1.0, latency=200, delay=1000, timeout=0)
    mutated.remove_toxic("threaded", "lab_x_downstream")     # magnitude rules do not apply to a removal
    (_, (added_to, _), fields), (_, (removed_from, _), _) = ctx.toxiproxy.calls
    assert removed_from == added_to
    asked = {"stream": "downstream", "toxicity": 1.0, "latency": 200, "delay": 1000, "timeout": 0}
    assert fields != asked or added_to != "threaded", "the mutant changed something"


def test_direction_and_timing_mutants_rewrite_what_they_say() -> None:
    ctx = FakeContext()
    for key in ("latency:other-stream", "reset-peer:late", "timeout:closes"):
        mutants.MutatedContext(ctx, mutants.get(key)).toxiproxy.add_toxic("threaded", "x", stream="downstream",
                                                                         timeout=0)
    streams = [c[2]["stream"] for c in ctx.toxiproxy.calls]
    timeouts = [c[2]["timeout"] for c in ctx.toxiproxy.calls]
    assert streams == ["upstream", "downstream", "downstream"] and timeouts == [0, 6000, 500]
