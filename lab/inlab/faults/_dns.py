"""What the resolver faults share: one rule in the client's namespace on the queries to Docker's DNS.

Docker's embedded resolver answers at 127.0.0.11 in every container's namespace (the nat table
DNATs its port 53 to a random port of that address). The client-agent's ``dns`` op puts the
fault's rule in LAB-FAULTS on the way *in* to that resolver's socket (``-i lo``): the query
leaves the client's resolver normally (its sendto succeeds) and then is dropped, or answered
with ICMP port unreachable. LAB-FAULTS comes before LAB-SANDBOX and INPUT has no per-uid chain,
so the sandboxed uid's queries meet the same rule.

The whole resolver of the client's namespace fails, not one name: the lab's own requests (the
server-agent, the servers' control ports, Toxiproxy's API) resolve names too, so a scenario with
a resolver fault talks only to the client-agent (127.0.0.1) while the fault is in place, and
clears it before anything else (the fault's ``clear`` flushes LAB-FAULTS).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lab.inlab.agent.iptables import DNS_COUNTS, DOCKER_DNS
from lab.inlab.context import ClientAgent, FaultContext
from lab.inlab.faults import Fault, NoParams


class ResolverFault(Fault):
    """Subclasses set ``action`` (the client-agent's ``dns`` action: drop or reject)."""

    action: ClassVar[str] = ""
    params: NoParams

    def __init__(self, ctx: FaultContext, params: NoParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.ids: list[str] = []

    def apply(self) -> None:
        self.ids = list(self.ctx.client_agent.dns(self.action, address=DOCKER_DNS))
        self.active = True

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.client_agent.unblock()


class DnsTally:
    """Counting rules on the resolver's traffic: queries in to it, DNS answers and ICMP errors back.

    Installed by the scenario before the fault's rule (not through the fault), so a weakened fault
    cannot weaken the measurement; the kernel's counters miss no packet, where a capture might.
    """

    def __init__(self, agent: ClientAgent) -> None:
        self.agent = agent
        self.ids = list(agent.dns("count", address=DOCKER_DNS))

    def counts(self) -> dict[str, int]:
        rules: list[dict[str, Any]] = self.agent.counters()
        out = {kind: 0 for kind in DNS_COUNTS}
        for rule in rules:
            if rule.get("id") in self.ids and rule.get("dns") in out:
                out[rule["dns"]] += int(rule.get("packets", 0))
        return out
