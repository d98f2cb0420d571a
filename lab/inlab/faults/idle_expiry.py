# A stateful firewall forgets an idle connection: the router gives new connections to the
# server's port a conntrack established-timeout of a few seconds (a timeout policy attached in
# its raw table), and drops every segment that belongs to no entry (conntrack NEW without SYN,
# or INVALID), as NAT gateways and cloud firewalls do. A connection quiet for longer than the
# timeout loses its entry; its next segment, from either side, vanishes without a word. Any
# packet before that (data, a heartbeat, a keepalive probe) refreshes the entry.
from __future__ import annotations

import dataclasses

from lab.addresses import DEFAULT_PORT
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, param, register


@dataclasses.dataclass(frozen=True)
class IdleExpiryParams:
    port: int = param(DEFAULT_PORT, ge=1, le=65535)   # new connections to this port of the server
    established: int = param(3, ge=1, le=3600)         # seconds an idle ESTABLISHED entry lives


@register
class IdleExpiry(Fault):
    name = "idle-expiry"
    params: IdleExpiryParams

    def __init__(self, ctx: FaultContext, params: IdleExpiryParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        self.ctx.router_agent.idle_expiry(self.params.port, self.params.established)
        self.active = True

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.router_agent.reset()
