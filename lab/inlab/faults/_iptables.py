"""What the packet faults share: one set of iptables rules in the server's namespace, and their counters."""

from __future__ import annotations

import dataclasses
from typing import Any

from lab.addresses import DEFAULT_PORT
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, param


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

    def block_args(self) -> dict[str, Any]:
        return dict(self.rule)

    def apply(self) -> None:
        self.ctx.server_agent.block(port=self.params.port, **self.block_args())
        self.active = True

    def dropped(self) -> int:
        """Packets the rules have matched so far: proof that the fault met real traffic."""
        return sum(int(r.get("packets", 0)) for r in self.ctx.server_agent.counters())

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_agent.unblock()
