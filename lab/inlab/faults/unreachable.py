# The path answers "unreachable": the router drops every packet towards the server's port and
# sends its sender an ICMP destination-unreachable instead (iptables REJECT in FORWARD), the way
# a router with no route, or a firewall that refuses rather than ignores, does. A connecting
# client's kernel ends connect() at once with the errno of the ICMP code: host-unreachable and
# admin-prohibited give EHOSTUNREACH, port-unreachable ECONNREFUSED. On an established connection
# Linux treats host and admin unreachables as soft errors: TCP keeps retransmitting and reports
# EHOSTUNREACH only when it gives up. Cleared by removing the rule.
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from lab.inlab.faults import register
from lab.inlab.faults._iptables import IptablesFault, IptablesParams

Icmp = Literal["host-unreachable", "port-unreachable", "admin-prohibited"]


@dataclasses.dataclass(frozen=True)
class UnreachableParams(IptablesParams):
    icmp: Icmp = "host-unreachable"     # the ICMP destination-unreachable code the router sends


@register
class Unreachable(IptablesFault):
    name = "unreachable"
    where = "router"
    params: UnreachableParams

    def block_args(self) -> dict[str, Any]:
        return {"direction": "in", "action": f"reject-{self.params.icmp}"}
