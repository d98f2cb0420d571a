"""The runner's Context, the agent client and the Toxiproxy client provide what the context Protocols list."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from lab.inlab import context, scenario
from lab.inlab.agent.client import AgentClient
from lab.inlab.runner import CaptureHandle, Context
from lab.inlab.toxics import Toxiproxy


def _members(protocol: type) -> dict[str, Any]:
    """A Protocol's own members: its methods, properties and annotated attributes."""
    own = {name: value for name, value in vars(protocol).items() if not name.startswith("_")}
    return {**{name: None for name in getattr(protocol, "__annotations__", {})}, **own}


def _check(protocol: type, implementation: Any) -> None:
    for name, declared in _members(protocol).items():
        assert hasattr(implementation, name), f"{type(implementation).__name__} lacks {protocol.__name__}.{name}"
        if inspect.isfunction(declared):
            wanted = list(inspect.signature(declared).parameters.values())[1:]
            offered = inspect.signature(getattr(implementation, name)).parameters
            for p in wanted:
                if p.kind is p.VAR_KEYWORD:
                    assert any(q.kind is q.VAR_KEYWORD for q in offered.values()), f"{name}(**{p.name})"
                else:
                    assert p.name in offered, f"{type(implementation).__name__}.{name} has no parameter {p.name!r}"


@pytest.fixture
def ctx() -> Context:
    return Context(scenario.get("frozen-process"), ["robust", "naive"])


@pytest.mark.parametrize("protocol", [context.ScenarioContext, context.FaultContext])
def test_the_runner_context_provides_what_scenarios_and_faults_use(ctx: Context, protocol: type) -> None:
    _check(protocol, ctx)


def test_the_clients_provide_what_the_context_hands_out(ctx: Context) -> None:
    _check(context.ServerAgent, ctx.server_agent)
    _check(context.ClientAgent, ctx.client_agent)
    _check(context.ToxiproxyAPI, ctx.toxiproxy)
    assert isinstance(ctx.server_agent, AgentClient) and isinstance(ctx.toxiproxy, Toxiproxy)
    assert hasattr(CaptureHandle, "stop")
