"""The router host's NAT: what makes the client's network and the server's network one path.

Wire behaviour: a packet from the lab network to this router's lab address, on one of the
server's ports, has its destination rewritten to the server on the backend network and its
source to the router's own backend address (the port is kept), and is forwarded; the server's
replies come back to the router and leave, rewritten back, towards whoever sent the original.
The router's conntrack table holds one entry per connection: the state a stateful firewall or a
NAT gateway keeps, and forgets.

Why NAT and not plain routing: Docker drops, on the host, every packet that leaves or enters an
``internal`` network's bridge with an address outside that network's subnet. Routed packets
keep the client's address and are dropped; NAT'ed ones stay inside each bridge's subnet.

On the lab network the router answers to the name ``server`` (a compose alias), so everything
that dials ``server:PORT`` (the clients, Toxiproxy's upstreams, the in-lab runner, the sandbox)
crosses it without knowing. It forwards exactly the server's ports (data, control, the
server-agent's API); its own agent listens on :data:`~lab.addresses.ROUTER_AGENT_PORT`, which it
does not forward.

This module plans (sans-IO: interfaces in, iptables argument lists out); the agent runs the plan
once at start (``python3 -m lab.inlab.agent --route-to backend-server``), before its API
listens, so the router-agent's healthcheck passes only with the NAT in place.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.addresses import AGENT_PORT, CONTROL_PORTS, SERVER_PORTS

DNAT_CHAIN = "LAB-ROUTER-DNAT"     # in nat PREROUTING
SNAT_CHAIN = "LAB-ROUTER-SNAT"     # in nat POSTROUTING
FORWARDED_PORTS = tuple(sorted({*SERVER_PORTS.values(), *CONTROL_PORTS.values(), AGENT_PORT}))
RESOLVE_WAIT = 60.0                # the backend server's name appears once its container is up


@dataclass(frozen=True)
class Interface:
    name: str
    address: str          # IPv4, dotted
    prefix: int

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{self.address}/{self.prefix}", strict=False)


@dataclass(frozen=True)
class Forward:
    """Further ports the router forwards to another host of the backend network (the standby server)."""

    server: str                            # that host's backend address
    ports: tuple[int, ...]


@dataclass(frozen=True)
class RouterPlan:
    """Which of the router's two links faces which network, and the servers behind it."""

    lab: Interface
    backend: Interface
    server: str                            # the server's backend address: the path's faults act on it
    ports: tuple[int, ...] = FORWARDED_PORTS
    others: tuple[Forward, ...] = ()       # a standby server's ports, never touched by the path's faults

    def as_dict(self) -> dict[str, Any]:
        return {"lab_interface": self.lab.name, "lab_address": self.lab.address,
                "backend_interface": self.backend.name, "backend_address": self.backend.address,
                "server": self.server, "ports": list(self.ports),
                "others": [{"server": f.server, "ports": list(f.ports)} for f in self.others]}


def parse_ip_addr(text: str) -> list[Interface]:
    """``ip -j -4 addr show`` → the IPv4 addresses of every interface but loopback."""
    try:
        links = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"ip -j addr printed something that is not JSON: {text[:200]!r}") from exc
    found = []
    for link in links:
        name = link.get("ifname")
        if not name or name == "lo":
            continue
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                found.append(Interface(name, info["local"], int(info["prefixlen"])))
    return found


def plan(interfaces: Sequence[Interface], server: str, ports: Sequence[int] = FORWARDED_PORTS,
         others: Sequence[Forward] = ()) -> RouterPlan:
    """The link whose subnet holds the server is the backend; the one other link is the lab's.

    Every host of ``others`` is on the backend network too, and its ports are none of the server's.
    """
    target = ipaddress.ip_address(server)
    backend = [i for i in interfaces if target in i.network]
    lab = [i for i in interfaces if target not in i.network]
    if len(backend) != 1 or len(lab) != 1:
        raise ValueError(f"a router has one link to the server's network ({server}) and one other; "
                         f"this one has {[f'{i.name} {i.address}/{i.prefix}' for i in interfaces]}")
    taken = set(ports)
    for other in others:
        if ipaddress.ip_address(other.server) not in backend[0].network:
            raise ValueError(f"a forward to {other.server} leaves the backend network {backend[0].network}")
        if taken & set(other.ports) or not other.ports:
            raise ValueError(f"a forward to {other.server} needs ports of its own; got {list(other.ports)}, "
                             f"and {sorted(taken)} are taken")
        taken |= set(other.ports)
    return RouterPlan(lab[0], backend[0], server, tuple(ports), tuple(others))


def parse_forward(text: str) -> tuple[str, tuple[int, ...]]:
    """``HOST=PORT,PORT`` (the agent's ``--also``) → (HOST, ports); ValueError saying what is accepted."""
    host, sep, ports = text.partition("=")
    try:
        numbers = tuple(int(p) for p in ports.split(","))
    except ValueError:
        numbers = ()
    if not sep or not host or not numbers or not all(1 <= n <= 65535 for n in numbers):
        raise ValueError(f"--also {text!r}: expected HOST=PORT[,PORT...] with ports 1-65535, "
                         f"e.g. backend-server2=7400,7401")
    return host, numbers


def nat_rules(p: RouterPlan) -> list[list[str]]:
    """iptables argument lists (without the ``iptables -w`` prefix) that install the NAT, in order.

    Each chain is flushed first, so running them again (a restarted agent) gives the same table.
    """
    dports = ",".join(map(str, p.ports))
    return [
        ["-t", "nat", "-N", DNAT_CHAIN], ["-t", "nat", "-F", DNAT_CHAIN],
        ["-t", "nat", "-N", SNAT_CHAIN], ["-t", "nat", "-F", SNAT_CHAIN],
        ["-t", "nat", "-A", DNAT_CHAIN, "-i", p.lab.name, "-d", p.lab.address, "-p", "tcp",
         "-m", "multiport", "--dports", dports, "-j", "DNAT", "--to-destination", p.server],
        # SNAT to one fixed address, not MASQUERADE --random: the source port is kept unless two
        # sources chose the same one (the client and Toxiproxy have disjoint port ranges).
        ["-t", "nat", "-A", SNAT_CHAIN, "-o", p.backend.name, "-d", p.server, "-p", "tcp",
         "-m", "multiport", "--dports", dports, "-j", "SNAT", "--to-source", p.backend.address],
    ] + [rule for other in p.others for rule in _forward_rules(p, other)]


def _forward_rules(p: RouterPlan, other: Forward) -> list[list[str]]:
    # The same two rewrites as the server's, on the other host's own ports.
    dports = ",".join(map(str, other.ports))
    return [["-t", "nat", "-A", DNAT_CHAIN, "-i", p.lab.name, "-d", p.lab.address, "-p", "tcp",
             "-m", "multiport", "--dports", dports, "-j", "DNAT", "--to-destination", other.server],
            ["-t", "nat", "-A", SNAT_CHAIN, "-o", p.backend.name, "-d", other.server, "-p", "tcp",
             "-m", "multiport", "--dports", dports, "-j", "SNAT", "--to-source", p.backend.address]]


def hooks() -> list[tuple[str, str]]:
    """(built-in nat chain, our chain) pairs to jump from, first."""
    return [("PREROUTING", DNAT_CHAIN), ("POSTROUTING", SNAT_CHAIN)]


def resolve(host: str, *, wait: float = RESOLVE_WAIT, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep,
            lookup: Callable[[str], str] = socket.gethostbyname) -> str:
    """``host``'s IPv4 address, retried until ``wait`` seconds have passed (then OSError, chained)."""
    deadline = clock() + wait
    while True:
        try:
            return lookup(host)
        except OSError as exc:
            if clock() >= deadline:
                raise OSError(f"router: {host!r} did not resolve within {wait:g} s: {exc}") from exc
            sleep(0.5)


__all__ = ["DNAT_CHAIN", "SNAT_CHAIN", "FORWARDED_PORTS", "Interface", "Forward", "RouterPlan", "parse_ip_addr",
           "plan", "parse_forward", "nat_rules", "hooks", "resolve"]
