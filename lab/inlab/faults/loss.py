# Packet loss on the path: the router's forwarding hop drops a random share of the packets
# to and from the server's port (iptables statistic match in FORWARD), as a congested or lossy
# link does: neither end's kernel learns of it except by the missing ACK. TCP hides it: the
# sender retransmits what was not ACKed, so data arrives intact and in order, only later.
# (Dropped in a sender's own OUTPUT chain instead, a packet is a local error its TCP is told of.)
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.faults import param, register
from lab.inlab.faults._iptables import IptablesFault, IptablesParams


@dataclasses.dataclass(frozen=True)
class LossParams(IptablesParams):
    probability: float = param(0.1, gt=0, lt=1)   # the share of packets dropped, each way


@register
class Loss(IptablesFault):
    name = "loss"
    where = "router"
    rule = {"direction": "both", "action": "drop"}
    params: LossParams

    def block_args(self) -> dict[str, Any]:
        return {**self.rule, "probability": self.params.probability}
