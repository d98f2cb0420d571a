# One-way partition on the path: the router silently drops every packet of the server's port
# going one way ("to-server": the client's segments and ACKs never reach the server; "to-client":
# the server's never come back) and forwards the other way as before. Nothing is sent back to
# anyone: no RST, no ICMP. Each side's kernel sees only its own segments go unacknowledged,
# or none of the other side's arrive. Cleared by removing the rule.
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from lab.inlab.faults import param, register
from lab.inlab.faults._iptables import IptablesFault, IptablesParams

Way = Literal["to-server", "to-client"]
# The router agent's directions: "in" is towards the server behind it.
DIRECTION: dict[str, str] = {"to-server": "in", "to-client": "out"}


@dataclasses.dataclass(frozen=True)
class PartitionParams(IptablesParams):
    way: Way = "to-server"      # which direction of the server's port the router stops forwarding


@register
class Partition(IptablesFault):
    name = "partition"
    where = "router"
    params: PartitionParams

    def block_args(self) -> dict[str, Any]:
        return {"direction": DIRECTION[self.params.way], "action": "drop"}
