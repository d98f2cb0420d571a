"""Container healthchecks: ``python3 -m lab.inlab.health [--isolated] [HOST:PORT | :PORT ...]``.

Exits 0 when every ``HOST:PORT`` accepts a TCP connection within two seconds,
every ``:PORT`` has a listening socket in this namespace's kernel table
(/proc/net/tcp: no connection is made, so the process behind it never sees the
check: a server under a fault counts its connections and descriptors), and,
with ``--isolated``, when this network namespace has no default route (IPv4
or IPv6): the lab's containers may reach each other and nothing else. The
agent beside each container removes the route at start (engines before
Docker 26 still install one on ``internal`` networks and rely on firewall
rules alone); the healthcheck keeps that promise checked for as long as the
container lives. Exit 1 names what failed.

``--agent HOST:PORT[=P1,P2,...]`` asks the fault agent at HOST:PORT (in another host's namespace)
for that namespace's health: its isolation and, for each Pn, a listening socket (the agent reads
its own kernel table). The lab has one healthcheck, in the client-agent, that asks the others
this way: every Docker healthcheck is a ``docker exec`` (about 80 ms of CPU), and seven of them
every two seconds were a third of a CPU per idle lab, which several labs at once cannot spare.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def check(address: str, timeout: float = 2.0, table: Path = Path("/proc/net/tcp")) -> str | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return f"{address!r} is not HOST:PORT or :PORT"
    if not host:
        return listening(int(port), table)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"{address}: {exc}"


def listening(port: int, table: Path = Path("/proc/net/tcp")) -> str | None:
    """None if some socket of this namespace listens on ``port`` (IPv4), else what is wrong."""
    from lab.inlab import tcptable

    try:
        rows = tcptable.parse(table.read_text(encoding="ascii", errors="replace"))
    except OSError as exc:
        return f":{port}: cannot read {table}: {exc}"
    if any(r.state == tcptable.LISTEN and r.local[1] == port for r in rows):
        return None
    return f":{port}: nothing listens on it"


def default_routes(proc: Path = Path("/proc/net")) -> list[str]:
    """Default routes in this network namespace, read from the kernel's tables."""
    found = []
    route = proc / "route"
    if route.exists():
        for line in route.read_text().splitlines()[1:]:
            fields = line.split()
            # Destination 00000000 with mask 00000000 is 0.0.0.0/0.
            if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
                found.append(f"ipv4 default via {fields[0]}")
    route6 = proc / "ipv6_route"
    if route6.exists():
        for line in route6.read_text().splitlines():
            fields = line.split()
            # ::/0 that is not the kernel's own unreachable placeholder on lo.
            if len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00" and fields[9] != "lo":
                found.append(f"ipv6 default via {fields[9]}")
    return found


def ask_agent(spec: str, timeout: float = 2.0) -> list[str]:
    """``HOST:PORT[=P1,P2,...]``: what the agent there finds wrong in its namespace (empty: healthy)."""
    from lab.inlab.agent.client import AgentClient, AgentError

    address, _, listed = spec.partition("=")
    host, sep, port = address.rpartition(":")
    try:
        ports = [int(p) for p in listed.split(",")] if listed else []
    except ValueError:
        ports = None
    if not sep or not host or not port.isdigit() or ports is None:
        return [f"--agent {spec!r} is not HOST:PORT or HOST:PORT=P1,P2,..."]
    try:
        reply = AgentClient(host, int(port), timeout=timeout).request("health", listening=ports)
    except AgentError as exc:
        said = str(exc)   # a connection problem names the agent already; a refusal is the agent's own words
        return [said if said.startswith(f"agent {address}:") else f"agent {address}: {said}"]
    return [f"agent {address}: {p}" for p in reply.get("problems", [])]


USAGE = "usage: python3 -m lab.inlab.health [--isolated] [HOST:PORT | :PORT ...] [--agent HOST:PORT[=P1,...] ...]"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    isolated = "--isolated" in argv
    agents: list[str] = []
    addresses: list[str] = []
    words = iter(a for a in argv if a != "--isolated")
    for word in words:
        if word == "--agent":
            agents.append(next(words, ""))
        else:
            addresses.append(word)
    if (not addresses and not isolated and not agents) or "" in agents:
        print(USAGE, file=sys.stderr)
        return 2
    problems = [p for p in map(check, addresses) if p]
    for spec in agents:
        problems += ask_agent(spec)
    if isolated:
        problems += [f"not isolated: {r}" for r in default_routes()]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
