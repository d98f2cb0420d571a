"""Packet faults as iptables rules: planning a block request's rules, and reading their counters back.

Every rule lives in one chain, LAB-FAULTS, jumped to first from INPUT and
OUTPUT; each carries a ``socket-lab:<id>`` comment so that its packet and byte
counters can be told apart in ``iptables -L LAB-FAULTS -v -x -n``. Running
iptables is the agent's job (:class:`lab.inlab.agent.service.Agent`); this
module says what to run and reads what came back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lab.inlab.agent.requests import BadRequest

CHAIN = "LAB-FAULTS"
HOOKS = ("INPUT", "OUTPUT")
COMMENT_PREFIX = "socket-lab:"
LOOPBACK = "127.0.0.0/8"
DIRECTIONS = ("in", "out", "both")
# "count" has no target: the rule only counts what it matches and the packet goes on to the next
# rule. Put before a fault's rules, it measures how many packets met them (a loss rate's n).
ACTIONS = {"drop": ["DROP"], "reject-rst": ["REJECT", "--reject-with", "tcp-reset"], "count": []}


@dataclass(frozen=True)
class Rule:
    """One iptables rule of a block request, and what it was meant to do."""

    id: str
    hook: str                 # the built-in chain whose packets it is meant for: INPUT or OUTPUT
    match: tuple[str, ...]    # e.g. ("--dport", "7000")
    action: str
    syn_only: bool
    probability: float | None

    def args(self, verb: str = "-A") -> list[str]:
        """iptables arguments that append (-A) or delete (-D) this rule in LAB-FAULTS."""
        # Never loopback: a host's own 127.0.0.1 traffic (its healthcheck, the client-agent's API)
        # would cross LAB-FAULTS from OUTPUT too, be dropped, and inflate the counters a
        # scenario relies on as proof. Faults are for the lab network between containers.
        argv = [verb, CHAIN, "!", "-d", LOOPBACK, "-p", "tcp", *self.match]
        if self.syn_only:
            argv.append("--syn")
        if self.probability is not None:
            argv += ["-m", "statistic", "--mode", "random", "--probability", repr(self.probability)]
        argv += ["-m", "comment", "--comment", f"{COMMENT_PREFIX}{self.id}"]
        if ACTIONS[self.action]:
            argv += ["-j", *ACTIONS[self.action]]
        return argv

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "hook": self.hook, "match": " ".join(self.match), "action": self.action,
                "syn_only": self.syn_only, "probability": self.probability}


PlannedRule = tuple[str, tuple[str, ...]]  # (hook, port match)


def plan_rules(port: int | None, peer_port: int | None, direction: str, syn_only: bool) -> list[PlannedRule]:
    """(hook, port match) pairs for one block request.

    ``port`` is this namespace's own port (a server's listening port): packets
    in are ``--dport`` in INPUT, packets out are ``--sport`` in OUTPUT.
    ``peer_port`` is the remote side's port (a client blocking its server):
    the other way round. A SYN always travels *to* the listening port, so
    ``syn_only`` keeps only the direction that carries it.

    The hook is what a rule is *meant* for: LAB-FAULTS is one chain jumped to
    from both INPUT and OUTPUT, so a ``--dport 7000`` rule would also match an
    outgoing packet to some other host's port 7000. In the lab that packet
    never exists (servers do not dial out to lab ports, clients never use them
    as local ports: ephemeral ports start at 32768), so the direction is exact
    in practice and the chain stays one simple list to count and flush.
    """
    if (port is None) == (peer_port is None):
        raise BadRequest('block: give exactly one of "port" (this side\'s port, e.g. a server\'s listening port) '
                         'or "peer_port" (the remote side\'s port, e.g. the server port a client talks to)')
    if port is not None:
        rules = {"in": ("INPUT", ("--dport", str(port))), "out": ("OUTPUT", ("--sport", str(port)))}
        syn_direction, field_name = "in", "port"
    else:
        rules = {"in": ("INPUT", ("--sport", str(peer_port))), "out": ("OUTPUT", ("--dport", str(peer_port)))}
        syn_direction, field_name = "out", "peer_port"
    if syn_only:
        if direction not in (syn_direction, "both"):
            raise BadRequest(f'block: syn_only matches connection SYNs, which travel to the listening port: with '
                             f'"{field_name}" use direction "{syn_direction}" or "both"; got "{direction}"')
        return [rules[syn_direction]]
    return [rules[d] for d in (("in", "out") if direction == "both" else (direction,))]


_COUNTER_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\S+)\s.*/\*\s*" + re.escape(COMMENT_PREFIX) + r"([\w-]+)\s*\*/")


def parse_counters(listing: str) -> list[dict[str, Any]]:
    """Packets and bytes of each lab rule in ``iptables -L LAB-FAULTS -v -x -n`` output."""
    found = []
    for line in listing.splitlines():
        m = _COUNTER_RE.match(line)
        if m:
            found.append({"id": m.group(4), "packets": int(m.group(1)), "bytes": int(m.group(2)),
                          "target": m.group(3)})
    return found
