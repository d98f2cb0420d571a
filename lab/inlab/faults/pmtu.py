# A path MTU black hole (RFC 2923): the router's link to the server gets a smaller MTU, and the
# ICMP "fragmentation needed" it sends for each packet too large for that link is dropped before
# it leaves, as a firewall that blocks all ICMP does. Small packets (the handshake, short
# messages) pass; a full-sized segment with Don't Fragment set is dropped at the router, its
# sender never learns why, and retransmits it, full-sized, until it gives up. With ``clamp`` the
# router also rewrites the MSS option of every SYN it forwards to fit the small link (MSS
# clamping): both ends then send segments that fit, and everything passes.
from __future__ import annotations

import dataclasses

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, param, register


@dataclasses.dataclass(frozen=True)
class PmtuParams:
    mtu: int = param(1200, ge=576, le=1499)    # the router's backend link's MTU (the lab's links have 1500)
    clamp: bool = False                        # rewrite SYNs' MSS to fit (the control case)


@register
class Pmtu(Fault):
    name = "pmtu"
    params: PmtuParams

    def __init__(self, ctx: FaultContext, params: PmtuParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        self.ctx.router_agent.link_mtu(self.params.mtu, black_hole=True, clamp_mss=self.params.clamp)
        self.active = True

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.router_agent.reset()
