"""Port exhaustion's pure parts: the range, the plan, the target, and the agent op's arguments (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.inlab.agent import ports
from lab.inlab.agent.service import Agent
from lab.inlab.faults import decode
from lab.toolerrors import UsageError


# The range -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("32768\t60999\n", (32768, 60999)), ("1024 1024", (1024, 1024)),
                                            ("  40000   40009 ", (40000, 40009))])
def test_parse_range(text: str, expected: tuple[int, int]) -> None:
    assert ports.parse_range(text) == expected


@pytest.mark.parametrize("text", ["", "32768", "32768 60999 1", "a b", "60999 32768", "0 10", "1 65536", "-1 5"])
def test_parse_range_refuses_what_is_not_a_range(text: str) -> None:
    with pytest.raises(ValueError, match="ip_local_port_range"):
        ports.parse_range(text)


def test_read_range_from_a_proc_tree(tmp_path: Path) -> None:
    (tmp_path / ports.RANGE_FILE).parent.mkdir(parents=True)
    (tmp_path / ports.RANGE_FILE).write_text("32768\t60999\n")
    assert ports.read_range(tmp_path) == (32768, 60999)
    with pytest.raises(ports.PortsError, match="cannot read"):
        ports.read_range(tmp_path / "nowhere")


# The plan ------------------------------------------------------------------------------------------

def test_plan_spares_the_highest_ports_and_claims_the_rest() -> None:
    p = ports.plan(32768, 60999, 4)
    assert p.spare == (60999, 60998, 60997, 60996)
    assert p.size == 28232 and len(p.claim) == 28228
    assert p.claim[0] == 32768 and p.claim[-1] == 60995 and list(p.claim) == sorted(p.claim)
    assert set(p.claim).isdisjoint(p.spare)


def test_plan_never_spares_a_port_a_socket_already_uses() -> None:
    # A spare port in TIME_WAIT towards the target would come free when it expires: a hole.
    p = ports.plan(100, 120, 3, used={120, 118, 117})
    assert p.spare == (119, 116, 115)
    assert set(p.claim) == set(range(100, 121)) - {119, 116, 115}
    assert {120, 118, 117} <= set(p.claim)   # claimed on another address (see lab/inlab/agent/ports.py)


@pytest.mark.parametrize("low, high, spare, used, message", [
    (100, 103, 4, (), "too few"), (100, 200, 0, (), "spare must be"), (100, 200, 65, (), "spare must be"),
    (100, 104, 2, (101, 102, 103, 104), "only 1 ports"),
])
def test_plan_refuses(low: int, high: int, spare: int, used: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ports.plan(low, high, spare, used)


def test_chunks_cover_every_port_once_within_the_chunk_size() -> None:
    claim = list(range(32768, 60996))
    parts = ports.chunks(claim, ports.CHUNK)
    assert [len(c) for c in parts] == [10000, 10000, 8228]
    assert [p for c in parts for p in c] == claim
    assert ports.chunks([], 5) == []
    with pytest.raises(ValueError):
        ports.chunks([1], 0)


# The target ----------------------------------------------------------------------------------------

def test_parse_target() -> None:
    assert ports.parse_target(["172.18.0.3", 7000]) == ("172.18.0.3", 7000)
    assert ports.parse_target(("10.0.0.1", 1)) == ("10.0.0.1", 1)


@pytest.mark.parametrize("value, message", [
    (None, "a target is"), ("172.18.0.3:7000", "a target is"), (["172.18.0.3"], "a target is"),
    (["172.18.0.3", "7000"], "a target is"), (["172.18.0.3", 0], "a target is"), (["172.18.0.3", 65536], "a target is"),
    (["172.18.0.3", True], "a target is"), (["server", 7000], "not an IPv4 address"),
    (["10.1", 7000], "full dotted form"), (["127.0.0.1", 9009], "loopback"),
])
def test_parse_target_refuses(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ports.parse_target(value)


# The agent's ops, on a fake exhaustion ----------------------------------------------------------------

class FakeExhaustion:
    def __init__(self, fail: str | None = None) -> None:
        self.started: list[tuple[Any, ...]] = []
        self.releases = 0
        self.fail = fail
        self.active = False

    def start(self, target: tuple[str, int], spare: int, deadline_s: float) -> dict[str, Any]:
        if self.fail:
            raise ports.PortsError(self.fail)
        self.started.append((target, spare, deadline_s))
        self.active = True
        return {"claimed": 28228, "connections": [["172.18.0.2", 60999]]}

    def release(self) -> dict[str, Any]:
        self.releases += 1
        held, self.active = self.active, False
        return {"listeners": 28228 if held else 0, "connections": 4 if held else 0, "holders": 3 if held else 0,
                "elapsed_s": 0.0}


def agent(tmp_path: Path, exhaustion: FakeExhaustion) -> Agent:
    from tests.unit.test_agent import FakeProc, FakeRunner, CHAIN_EXISTS

    proc = FakeProc(tmp_path / "proc")
    return Agent(FakeRunner(CHAIN_EXISTS), proc_root=proc.root, capture_dir=tmp_path, kill=proc.kill,
                 exhaustion=exhaustion)  # type: ignore[arg-type]


def test_exhaust_ports_decodes_its_fields_and_delegates(tmp_path: Path) -> None:
    fake = FakeExhaustion()
    reply = agent(tmp_path, fake).handle({"op": "exhaust_ports", "target": ["172.18.0.3", 7000]})
    assert reply == {"ok": True, "claimed": 28228, "connections": [["172.18.0.2", 60999]]}
    assert fake.started == [(("172.18.0.3", 7000), 4, ports.DEFAULT_DEADLINE)]
    fake.active = False
    agent(tmp_path / "again", fake).handle({"op": "exhaust_ports", "target": ["172.18.0.3", 7100], "spare": 64,
                                            "timeout": 30})
    assert fake.started[-1] == (("172.18.0.3", 7100), 64, 30.0)


@pytest.mark.parametrize("request_, message", [
    ({}, 'field "target" is required'),
    ({"target": ["127.0.0.1", 9009]}, 'field "target": a target is [IPv4 address, TCP port]'),
    ({"target": "server:7000"}, 'field "target"'),
    ({"target": ["172.18.0.3", 7000], "spare": 0}, 'field "spare" must be an integer from 1 to 64; got 0'),
    ({"target": ["172.18.0.3", 7000], "spare": 4.0}, 'field "spare" must be an integer'),
    ({"target": ["172.18.0.3", 7000], "timeout": 31}, 'field "timeout" must be a number with 0 < x <= 30; got 31'),
    ({"target": ["172.18.0.3", 7000], "timeout": 0}, 'field "timeout" must be a number'),
    ({"target": ["172.18.0.3", 7000], "range": [1, 2]}, "unknown field(s) 'range'"),
])
def test_exhaust_ports_refuses_bad_fields(tmp_path: Path, request_: dict[str, Any], message: str) -> None:
    fake = FakeExhaustion()
    reply = agent(tmp_path, fake).handle({"op": "exhaust_ports", **request_})
    assert reply["ok"] is False and message in reply["error"], reply
    assert fake.started == []


def test_exhaust_ports_failure_is_a_reply_not_a_crash(tmp_path: Path) -> None:
    reply = agent(tmp_path, FakeExhaustion(fail="exhaust_ports: not exhausted")).handle(
        {"op": "exhaust_ports", "target": ["172.18.0.3", 7000]})
    assert reply == {"ok": False, "error": "exhaust_ports: not exhausted"}


def test_release_and_reset_release_the_ports_and_count_them(tmp_path: Path) -> None:
    fake = FakeExhaustion()
    a = agent(tmp_path, fake)
    assert a.handle({"op": "exhaust_ports", "target": ["172.18.0.3", 7000]})["ok"]
    assert a.handle({"op": "release_ports"}) == {"ok": True, "released": {"listeners": 28228, "connections": 4,
                                                                          "holders": 3, "elapsed_s": 0.0}}
    assert a.handle({"op": "release_ports"})["released"]["listeners"] == 0   # idempotent
    assert a.handle({"op": "exhaust_ports", "target": ["172.18.0.3", 7000]})["ok"]
    reply = a.handle({"op": "reset"})
    assert reply["ok"] and reply["ports_released"]["listeners"] == 28228 and not fake.active


def test_the_real_exhaustion_refuses_a_second_start(tmp_path: Path) -> None:
    ex = ports.Exhaustion(tmp_path)
    ex.conns = [object()]  # type: ignore[list-item]   # as if started
    with pytest.raises(ports.PortsError, match="already exhausted"):
        ex.start(("172.18.0.3", 7000), 4, 1.0, port_range=(40000, 40010))


# The fault's parameters -------------------------------------------------------------------------------

def test_the_fault_decodes_typed_parameters() -> None:
    p = decode("exhaust-ports", {})
    assert (p.server, p.spare, p.timeout) == ("threaded", 4, 20.0)
    assert decode("exhaust-ports", {"server": "selectors", "spare": 8, "timeout": 5}).timeout == 5.0
    for bad, message in [({"spare": 0}, "'spare' = 0: expected an integer >= 1 and <= 64"),
                         ({"timeout": 31}, "'timeout' = 31: expected a number > 0 and <= 30"),
                         ({"server": "nosuch"}, "'server' = 'nosuch'"), ({"port": 7000}, "'port'")]:
        with pytest.raises(UsageError, match=message):
            decode("exhaust-ports", bad)


# The mutants ---------------------------------------------------------------------------------------

class _Ctx:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.marks: list[str] = []
        self.server_agent = object()
        self.toxiproxy = object()
        ctx = self

        class Client:
            def exhaust_ports(self, target: tuple[str, int], **fields: Any) -> dict[str, Any]:
                ctx.calls.append((target, fields))
                return {"claimed": 1}

            def release_ports(self) -> dict[str, Any]:
                ctx.calls.append(("release",))
                return {}

        self.client_agent = Client()

    def mark(self, actor: str, what: str, **facts: Any) -> float:
        self.marks.append(what)
        return 0.0


@pytest.mark.parametrize("name, expected", [
    ("wrong-destination", (("172.18.0.3", 7100), {"spare": 4, "timeout": 20.0})),
    ("gives-up", (("172.18.0.3", 7000), {"spare": 4, "timeout": 0.05})),
])
def test_exhaust_ports_mutants_rewrite_the_request(name: str, expected: tuple[Any, ...]) -> None:
    from lab.inlab import mutants

    ctx = _Ctx()
    mutated = mutants.MutatedContext(ctx, mutants.get(f"exhaust-ports:{name}"))
    assert mutated.client_agent.exhaust_ports(("172.18.0.3", 7000), spare=4, timeout=20.0) == {"claimed": 1}
    mutated.client_agent.release_ports()
    assert ctx.calls == [expected, ("release",)]


def test_the_no_op_mutant_swallows_the_request() -> None:
    from lab.inlab import mutants

    ctx = _Ctx()
    mutated = mutants.MutatedContext(ctx, mutants.get("exhaust-ports:no-op"))
    assert mutated.client_agent.exhaust_ports(("172.18.0.3", 7000), spare=4, timeout=20.0) == {}
    assert ctx.calls == [] and ctx.marks == ["mutant exhaust-ports:no-op: exhaust_ports swallowed"]
    assert len(mutants.for_fault("exhaust-ports")) >= 2
