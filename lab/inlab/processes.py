"""The lab's server processes as the server-agent lists them, found by the port they serve.

A fault names a server ("threaded"); the clients connect to a port. A proof about a process
(stopped, killed, restarted) must be about the process behind the port the clients use, so it
looks that process up by the ``--port=N`` on its command line (compose.yaml starts each server
with one; ``python -m lab.server`` defaults to :data:`lab.addresses.DEFAULT_PORT`), never by the
name the fault was given, which a wrong fault would get wrong too::

    procs = ctx.server_agent.processes()
    proc = serving(procs, 7000)   # {"pid": 12, "state": "T", "role": "threaded", "started": ..., ...} or None
    describe(proc)                # "pid 12 (threaded, port 7000, state T)"

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lab.addresses import DEFAULT_PORT, SERVER_PORTS

__all__ = ["SERVER_ROLES", "listening_port", "serving", "servers", "describe", "server_named"]

SERVER_ROLES = tuple(SERVER_PORTS)
Proc = Mapping[str, Any]


def listening_port(proc: Proc) -> int | None:
    """The data port a lab server process was started to listen on, from its command line."""
    if proc.get("role") not in SERVER_ROLES:
        return None
    tokens = str(proc.get("cmdline", "")).split()
    for i, token in enumerate(tokens):
        if token.startswith("--port="):
            value = token.split("=", 1)[1]
        elif token == "--port" and i + 1 < len(tokens):
            value = tokens[i + 1]
        else:
            continue
        return int(value) if value.isdigit() else None
    return DEFAULT_PORT


def servers(procs: Iterable[Proc]) -> list[Proc]:
    """The lab server processes (not the supervisor) in a process list."""
    return [p for p in procs if p.get("role") in SERVER_ROLES]


def serving(procs: Iterable[Proc], port: int) -> Proc | None:
    """The server process that serves ``port``, if one is listed."""
    return next((p for p in servers(procs) if listening_port(p) == port), None)


def server_named(port: int) -> str:
    """The lab's name for the server behind a data port (Toxiproxy fronts each on the same number)."""
    for name, known in SERVER_PORTS.items():
        if known == port:
            return name
    raise ValueError(f"no lab server listens on port {port}; the servers' ports: {SERVER_PORTS}")


def describe(proc: Proc | None) -> str:
    if proc is None:
        return "none"
    return f"pid {proc.get('pid')} ({proc.get('role')}, port {listening_port(proc)}, state {proc.get('state')})"
