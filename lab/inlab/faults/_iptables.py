"""What the packet faults share: one set of iptables rules in the server's namespace, and their counters."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, Literal

from lab.addresses import DEFAULT_PORT
from lab.inlab.context import FaultContext, ServerAgent
from lab.inlab.faults import Fault, param

Direction = Literal["in", "out"]
# Where the agent puts a rule for each direction, and how it matches the server's own port
# (lab.inlab.agent.iptables.plan_rules): packets in are --dport in INPUT, packets out --sport in OUTPUT.
_HOOK: dict[Direction, tuple[str, str]] = {"in": ("INPUT", "--dport"), "out": ("OUTPUT", "--sport")}


@dataclasses.dataclass(frozen=True)
class IptablesParams:
    port: int = param(DEFAULT_PORT, ge=1, le=65535)   # the server's port whose packets the rules match


class IptablesFault(Fault):
    """Subclasses set ``rule`` (the agent's ``block`` arguments, less the port)."""

    rule: dict[str, Any] = {}
    params: IptablesParams

    def __init__(self, ctx: FaultContext, params: IptablesParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.ids: list[str] = []      # the agent's ids of the rules this fault added

    def block_args(self) -> dict[str, Any]:
        return dict(self.rule)

    def apply(self) -> None:
        self.ids = list(self.ctx.server_agent.block(port=self.params.port, **self.block_args()))
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
        return per_direction(self.ctx.server_agent.counters(), self.ids, self.params.port, target)

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_agent.unblock()


class Tally:
    """Rules that only count, put in front of a fault's rules: how many packets met them, per direction.

    A drop share needs its denominator, and a capture is no reliable one: tcpdump starved of
    CPU on a busy machine misses packets. The kernel's own counters miss none. Installed by the
    scenario (not through the fault), so a weakened fault cannot weaken the measurement.
    """

    def __init__(self, agent: ServerAgent, port: int) -> None:
        self.agent, self.port = agent, port
        self.ids = list(agent.block(port=port, direction="both", action="count"))

    def counts(self) -> dict[Direction, int]:
        return per_direction(self.agent.counters(), self.ids, self.port)


def per_direction(rules: list[dict[str, Any]], ids: Collection[str], port: int,
                  target: str | None = None) -> dict[Direction, int]:
    """Packets of the rules ``ids`` on ``port``, per direction (from the agent's ``counters``)."""
    out: dict[Direction, int] = {}
    for direction, (hook, option) in _HOOK.items():
        out[direction] = sum(int(r.get("packets", 0)) for r in rules
                             if r.get("id") in ids and r.get("hook") == hook and r.get("match") == f"{option} {port}"
                             and (target is None or r.get("target") == target))
    return out
