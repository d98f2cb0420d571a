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
COMMENT_PREFIX = "socket-lab:"
LOOPBACK = "127.0.0.0/8"
DIRECTIONS = ("in", "out", "both")
# "count" has no target: the rule only counts what it matches and the packet goes on to the next
# rule. Put before a fault's rules, it measures how many packets met them (a loss rate's n).
# The ICMP rejections say "unreachable" in three ways; Linux's TCP turns each into an errno
# (icmp_err_convert in net/ipv4/icmp.c): host-unreachable and admin-prohibited (code 13,
# "communication administratively prohibited") give EHOSTUNREACH, port-unreachable ECONNREFUSED.
ACTIONS = {"drop": ["DROP"], "reject-rst": ["REJECT", "--reject-with", "tcp-reset"], "count": [],
           "reject-host-unreachable": ["REJECT", "--reject-with", "icmp-host-unreachable"],
           "reject-port-unreachable": ["REJECT", "--reject-with", "icmp-port-unreachable"],
           "reject-admin-prohibited": ["REJECT", "--reject-with", "icmp-admin-prohibited"]}
# A router's faults sit on its forwarding hop: both directions pass FORWARD, told apart by port.
FORWARD_HOOKS = {"in": "FORWARD", "out": "FORWARD"}
ENDPOINT_HOOKS = {"in": "INPUT", "out": "OUTPUT"}


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


def plan_rules(port: int | None, peer_port: int | None, direction: str, syn_only: bool,
               hooks: dict[str, str] = ENDPOINT_HOOKS) -> list[PlannedRule]:
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

    On the router (``hooks=FORWARD_HOOKS``) ``port`` is the server's port behind
    it: "in" is towards the server (``--dport`` in FORWARD), "out" back from it.
    """
    if (port is None) == (peer_port is None):
        raise BadRequest('block: give exactly one of "port" (this side\'s port, e.g. a server\'s listening port) '
                         'or "peer_port" (the remote side\'s port, e.g. the server port a client talks to)')
    if port is not None:
        rules = {"in": (hooks["in"], ("--dport", str(port))), "out": (hooks["out"], ("--sport", str(port)))}
        syn_direction, field_name = "in", "port"
    else:
        if hooks is FORWARD_HOOKS:
            raise BadRequest('block: on the router give "port" (the server\'s port behind it), not "peer_port"')
        rules = {"in": (hooks["in"], ("--sport", str(peer_port))), "out": (hooks["out"], ("--dport", str(peer_port)))}
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


# The resolver ----------------------------------------------------------------------------------
# Docker's embedded DNS answers at 127.0.0.11 inside each container's namespace: the nat table
# DNATs port 53 to a random port of that address, so the filter table sees 127.0.0.11:<random>.
# DNS rules match on INPUT only (``-i lo``: in OUTPUT a packet has no input interface, so they
# never match there). That is on purpose: a query dropped or rejected in OUTPUT fails the
# resolver's sendto() at once with EPERM, a local error no real network gives; dropped on its
# way *in* to the resolver's socket, the query has left the client and simply gets no answer.
# INPUT also has no per-uid chain, so the sandboxed uid's queries meet the same rules.
DOCKER_DNS = "127.0.0.11"
DNS_ACTIONS = ("drop", "reject", "count")
# What each counting rule counts, in the order they are added.
DNS_COUNTS = ("queries", "answers", "errors")
_DNS_ADDRESS_RE = re.compile(r"127\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){2}")


@dataclass(frozen=True)
class DnsRule:
    """One iptables rule of a ``dns`` request: a fault on the resolver's queries, or a counter."""

    id: str
    kind: str        # drop | reject | queries | answers | errors
    address: str     # the resolver's address (Docker's 127.0.0.11)

    def args(self, verb: str = "-A") -> list[str]:
        match = {"queries": ["-d", self.address], "drop": ["-d", self.address], "reject": ["-d", self.address],
                 "answers": ["-s", self.address, "!", "-p", "icmp"],
                 "errors": ["-s", self.address, "-p", "icmp"]}[self.kind]
        argv = [verb, CHAIN, "-i", "lo", *match, "-m", "comment", "--comment", f"{COMMENT_PREFIX}{self.id}"]
        if self.kind == "drop":
            argv += ["-j", "DROP"]
        elif self.kind == "reject":
            # "Port unreachable": the resolver's host is up and nothing listens on its DNS port; the
            # client's resolver reads ECONNREFUSED from its UDP socket and gives up at once.
            argv += ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]
        return argv

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "hook": "INPUT", "match": f"dns {self.kind} {self.address}", "action": self.kind,
                "dns": self.kind, "address": self.address}


def plan_dns(action: str, address: str) -> list[tuple[str, str]]:
    """(kind, address) of each rule a ``dns`` request adds: one fault rule, or the three counters."""
    if action not in DNS_ACTIONS:
        raise BadRequest(f'dns: "action" must be one of {", ".join(DNS_ACTIONS)}; got {action!r}')
    if not _DNS_ADDRESS_RE.fullmatch(address):
        raise BadRequest(f'dns: "address" must be a loopback IPv4 address (127.x.y.z) where a resolver answers; '
                         f"got {address!r}")
    kinds = DNS_COUNTS if action == "count" else (action,)
    return [(kind, address) for kind in kinds]
