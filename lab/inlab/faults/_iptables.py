"""What the packet faults share: one set of iptables rules in the server's namespace, and their counters."""

from __future__ import annotations

from typing import Any

from lab.inlab.faults import Fault


class IptablesFault(Fault):
    """Subclasses set ``rule`` (the agent's ``block`` arguments, less the port)."""

    rule: dict[str, Any] = {}

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        port = params.get("port", 7000)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"parameter 'port' must be a TCP port number; got {port!r}")
        self.port = port
        self.active = False

    def block_args(self) -> dict[str, Any]:
        return dict(self.rule)

    def apply(self) -> None:
        self.ctx.server_agent.block(port=self.port, **self.block_args())
        self.active = True

    def dropped(self) -> int:
        """Packets the rules have matched so far: proof that the fault met real traffic."""
        return sum(int(r.get("packets", 0)) for r in self.ctx.server_agent.counters())

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_agent.unblock()
