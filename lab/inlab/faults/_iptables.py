"""What the packet faults share: iptables rules in the server's namespace or on the router's hop, and their counters."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, Literal

from lab.addresses import DEFAULT_PORT
from lab.inlab.context import FaultContext, ServerAgent
from lab.inlab.faults import Fault, param

Direction = Literal["in", "out"]
Where = Literal["server", "router"]
# Where the agent puts a rule for each direction, and how it matches the server's own port
# (lab.inlab.agent.iptables.plan_rules): at the server, packets in are --dport in INPUT, packets
# out --sport in OUTPUT; on the router both pass FORWARD, "in" towards the server.
_HOOKS: dict[Where, dict[Direction, tuple[str, str]]] = {
    "server": {"in": ("INPUT", "--dport"), "out": ("OUTPUT", "--sport")},
    "router": {"in": ("FORWARD", "--dport"), "out": ("FORWARD", "--sport")},
}


@dataclasses.dataclass(frozen=True)
class IptablesParams:
    port: int = param(DEFAULT_PORT, ge=1, le=65535)   # the server's port whose packets the rules match


class IptablesFault(Fault):
    """Subclasses set ``rule`` (the agent's ``block`` arguments, less the port), and ``where``:
    the server's own namespace (an endpoint fault) or the router's forwarding hop (the path's)."""

    rule: dict[str, Any] = {}
    where: Where = "server"
    params: IptablesParams

    @property
    def agent(self) -> ServerAgent:
        return self.ctx.router_agent if self.where == "router" else self.ctx.server_agent

    def __init__(self, ctx: FaultContext, params: IptablesParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.ids: list[str] = []      # the agent's ids of the rules this fault added

    def block_args(self) -> dict[str, Any]:
        return dict(self.rule)

    def apply(self) -> None:
        self.ids = list(self.agent.block(port=self.params.port, **self.block_args()))
        self.active = True

    def matched(self, direction: Direction, target: str | None = None) -> int:
        """Packets matched so far by this fault's rule for ``direction`` of its port."""
        return self.counts(target)[direction]

    def counts(self, target: str | None = None) -> dict[Direction, int]:
        """Packets matched so far per direction, both read from one listing of the counters.

        Per rule, not summed over the chain: a proof that a direction was cut must not be
        satisfied by the other direction's rule, by a rule on some other port, or by rules the
        scenario added to measure (:class:`Tally`). ``target`` (``DROP``, ``REJECT``) keeps
        only rules that do that to what they match.
        """
        return per_direction(self.agent.counters(), self.ids, self.params.port, target, self.where)

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.agent.unblock()


class Tally:
    """Rules that only count, put in front of a fault's rules: how many packets met them, per direction.

    A drop share needs its denominator, and a capture is no reliable one: tcpdump starved of
    CPU on a busy machine misses packets. The kernel's own counters miss none. Installed by the
    scenario (not through the fault), so a weakened fault cannot weaken the measurement.
    """

    def __init__(self, agent: ServerAgent, port: int, where: Where = "server") -> None:
        self.agent, self.port, self.where = agent, port, where
        self.ids = list(agent.block(port=port, direction="both", action="count"))

    def counts(self) -> dict[Direction, int]:
        return per_direction(self.agent.counters(), self.ids, self.port, where=self.where)


def per_direction(rules: list[dict[str, Any]], ids: Collection[str], port: int,
                  target: str | None = None, where: Where = "server") -> dict[Direction, int]:
    """Packets of the rules ``ids`` on ``port``, per direction (from the agent's ``counters``)."""
    out: dict[Direction, int] = {}
    for direction, (hook, option) in _HOOKS[where].items():
        out[direction] = sum(int(r.get("packets", 0)) for r in rules
                             if r.get("id") in ids and r.get("hook") == hook and r.get("match") == f"{option} {port}"
                             and (target is None or r.get("target") == target))
    return out
