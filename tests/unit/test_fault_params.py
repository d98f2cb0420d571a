"""Fault parameters: declared as typed dataclass fields, decoded and checked once by the registry."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing

import pytest

from lab import addresses
from lab.inlab import faults, scenario, toxics
from lab.inlab.faults.behave import BehaveParams
from lab.inlab.faults.toxic import Toxic, ToxicParams
from lab.server.behaviour import Behaviour
from lab.toolerrors import UsageError

REQUIRED_EXAMPLES = {"host": {"action": "pause"},   # the faults with a parameter that has no default
                     "kill-child": {"peer_port": 45678}}
ERROR = re.compile(r"^fault '(?P<fault>[a-z-]+)': parameter '(?P<param>\w+)' = (?P<given>.+): "
                   r"expected (?P<expected>.+)$")


def _refused(fault: str, params: dict[str, typing.Any]) -> dict[str, str]:
    with pytest.raises(UsageError) as caught:
        faults.decode(fault, params)
    match = ERROR.match(str(caught.value))
    assert match, f"not the one error format: {caught.value}"
    return match.groupdict()


@pytest.mark.parametrize("name", faults.names())
def test_every_fault_decodes_its_defaults(name: str) -> None:
    given = REQUIRED_EXAMPLES.get(name, {})
    decoded = faults.decode(name, given)
    assert dataclasses.is_dataclass(decoded)
    # Every default is itself a value the checks accept: passing them all explicitly decodes the same.
    assert faults.decode(name, dataclasses.asdict(decoded)) == decoded
    for key, accepted, default in faults.parameters(name):
        assert accepted and (default is not dataclasses.MISSING or key in given)


@pytest.mark.parametrize("name", faults.names())
def test_an_unknown_parameter_names_itself_its_value_and_the_accepted_ones(name: str) -> None:
    got = _refused(name, {**REQUIRED_EXAMPLES.get(name, {}), "colour": "blue"})
    assert got["fault"] == name and got["param"] == "colour" and got["given"] == "'blue'"
    declared = [key for key, _, _ in faults.parameters(name)]
    if declared:
        assert got["expected"] == f"one of its parameters: {', '.join(declared)}"
    else:
        assert got["expected"] == f"no parameters: {name} takes none"


def test_a_wrong_type_names_parameter_value_and_type() -> None:
    assert _refused("latency", {"latency": "200"}) == {
        "fault": "latency", "param": "latency", "given": "'200'", "expected": "an integer >= 0"}
    assert _refused("latency", {"jitter": 1.5})["expected"] == "an integer >= 0"
    assert _refused("vanish", {"port": True}) == {
        "fault": "vanish", "param": "port", "given": "True", "expected": "an integer >= 1 and <= 65535"}
    assert _refused("behave", {"accepting": 0}) == {
        "fault": "behave", "param": "accepting", "given": "0", "expected": "True or False or None"}
    assert _refused("host", {"action": "pause", "service": 3})["expected"] == "a string"


def test_a_bad_choice_lists_the_choices() -> None:
    assert _refused("freeze", {"server": "nginx"}) == {
        "fault": "freeze", "param": "server", "given": "'nginx'",
        "expected": "one of 'threaded', 'selectors', 'forking'"}
    assert _refused("slicer", {"stream": "sideways"})["expected"] == "one of 'upstream', 'downstream'"
    assert _refused("behave", {"mode": "nap"})["expected"] == ("one of 'normal', 'close', 'abort', 'stop_reading' "
                                                               "or None")
    assert _refused("host", {"action": "reboot"})["expected"] == "one of 'pause', 'disconnect', 'kill'"


def test_a_value_out_of_range_says_the_range() -> None:
    for probability in (0, 1, 1.5, -0.1, float("nan")):
        got = _refused("loss", {"probability": probability})
        assert got["param"] == "probability" and got["expected"] == "a number > 0 and < 1"
    assert _refused("syn-drop", {"port": 65536})["given"] == "65536"
    assert _refused("timeout", {"toxicity": 1.01})["expected"] == "a number >= 0 and <= 1"
    assert _refused("behave", {"after": -1})["expected"] == "an integer >= 0 or None"


def test_a_missing_required_parameter_says_what_it_takes() -> None:
    assert _refused("host", {}) == {"fault": "host", "param": "action", "given": "(not given)",
                                    "expected": "one of 'pause', 'disconnect', 'kill'"}


def test_decoded_values_have_the_declared_types() -> None:
    loss = faults.decode("loss", {"probability": 0.25})
    assert (loss.port, loss.probability) == (addresses.DEFAULT_PORT, 0.25)
    assert isinstance(faults.decode("latency", {"toxicity": 1}).toxicity, float)
    slicer = faults.decode("slicer", {"average_size": 64, "size_variation": 32, "delay": 200})
    assert slicer.attributes() == {"average_size": 64, "size_variation": 32, "delay": 200}
    behave = faults.decode("behave", {"mode": "close", "after": 2})
    assert (behave.server, behave.changes()) == ("threaded", {"mode": "close", "after": 2})


def test_create_hands_the_fault_its_context_and_decoded_parameters() -> None:
    ctx = object()
    fault = faults.create("freeze", ctx, {"server": "selectors"})  # type: ignore[arg-type]
    assert fault.ctx is ctx and fault.params.server == "selectors"
    with pytest.raises(UsageError, match=r"^fault 'freeze': parameter 'target'"):
        faults.create("freeze", ctx, {"target": "threaded"})  # type: ignore[arg-type]


def test_the_declared_choices_are_the_labs_own() -> None:
    assert set(typing.get_args(faults.Server)) == set(addresses.SERVER_PORTS)
    assert toxics.STREAMS == ("upstream", "downstream")
    # behave passes its fields to the server's Behaviour, one for one (server aside).
    behaviour = {f.name for f in dataclasses.fields(Behaviour)}
    assert {f.name for f in dataclasses.fields(BehaveParams)} - {"server"} == behaviour
    # A toxic's own attributes are Toxiproxy's: integers, on top of what every toxic takes.
    for name in faults.names():
        cls = faults.get(name)
        if issubclass(cls, Toxic):
            assert cls.kind in toxics.TOXIC_TYPES
            declared = faults.params_class(cls)
            shared = {f.name for f in dataclasses.fields(ToxicParams)}
            own = [f for f in dataclasses.fields(declared) if f.name not in shared]
            assert own and all(typing.get_type_hints(declared)[f.name] is int for f in own), name


def _apply_calls(path: typing.Any) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "apply" and isinstance(node.func.value, ast.Name) and node.func.value.id == "ctx"]


def test_every_fault_a_scenario_applies_decodes() -> None:
    seen = 0
    for s in scenario.discover().values():
        for call in _apply_calls(s.source):
            name = ast.literal_eval(call.args[0])
            # Each value as the module would compute it: a constant or one of its module-level names;
            # a scenario that applies a fault per server (for server in SERVERS) is checked for each.
            # A value only known at run time (a client's port) stands in as the fault's example.
            bindings = [{}]
            if "SERVERS" in vars(s.module):
                bindings = [{"server": server} for server in s.module.SERVERS]
            for bound in bindings:
                scope = {**vars(s.module), **bound}
                params = {}
                for kw in call.keywords:
                    try:
                        params[kw.arg] = eval(compile(ast.Expression(kw.value), str(s.source), "eval"),  # noqa: S307
                                              scope)
                    except NameError:
                        assert kw.arg in REQUIRED_EXAMPLES.get(name, {}), (s.name, name, kw.arg)
                        params[kw.arg] = REQUIRED_EXAMPLES[name][kw.arg]
                faults.decode(name, params)
                seen += 1
    assert seen >= 15


def test_an_unknown_fault_name_is_bad_input_that_lists_the_known_faults() -> None:
    with pytest.raises(UsageError, match=r"unknown fault 'nosuch'; known faults: .*\bvanish\b") as caught:
        faults.get("nosuch")
    assert caught.value.exit_code == 2
