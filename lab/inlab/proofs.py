"""Proofs over the subjects' own connections, one capture at a time.

A scenario's proof is about the connections under test: each judged implementation's (code
under grading may run beside them and do anything), found in a capture by the local ports its
sockets used (``ctx.client_ports(impl)``, grouped into connections by
:func:`lab.evidence.legs.connections`). :func:`per_connection` turns a judgement of one
connection into one proof over all of them, and fails when an implementation's connection is
missing from the capture::

    conns = subjects(ctx, capture.pcap, port, EXPECT)
    per_connection(ctx, "no reply came after the fault", conns, lambda c: silent(c, after_fault))

:func:`server_closed_first` is the judgement process deaths and deliberate closes share: the
server's FIN or RST after a moment, and before the client's own FIN or RST (the teardown's,
which every healthy run has).

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER, Conn, connections
from lab.evidence.pcap import FIN, RST, PcapFile, Segment
from lab.inlab.context import ScenarioContext
from lab.inlab.processes import Proc, describe, serving

__all__ = ["judged", "subjects", "per_connection", "server_closed_first", "earliest", "seconds_after", "prove_restarted"]

Judgement = Callable[[Conn], tuple[bool, str]]


def judged(ctx: ScenarioContext, expect: Collection[str]) -> list[str]:
    """The implementations running that the scenario judges (its EXPECT's keys).

    Code under grading runs beside them (lab grade) and may do anything at all; a proof that
    the fault happened rests on the judged implementations' connections only.
    """
    if ctx.proving_for is not None:
        return [ctx.proving_for]      # ctx.prove_each: a graded program's own connections, now
    return [impl for impl in ctx.impls if impl in expect]


def subjects(ctx: ScenarioContext, pcap: PcapFile | None, port: int,
             expect: Collection[str]) -> dict[str, list[Conn]]:
    """Each judged implementation's connections to ``port`` in a capture, by the local ports it used."""
    impls = judged(ctx, expect)
    if pcap is None:
        return {impl: [] for impl in impls}
    return {impl: connections(pcap, server_port=port, client_ports=ctx.client_ports(impl)) for impl in impls}


def per_connection(ctx: ScenarioContext, name: str, conns: Mapping[str, Sequence[Conn]], judge: Judgement) -> bool:
    """Prove ``name`` of every implementation's connections; a missing connection fails the proof."""
    parts: list[str] = []
    ok = bool(conns)
    for impl, found in conns.items():
        if not found:
            ok = False
            parts.append(f"{impl}: no connection of its in the capture (ports {sorted(ctx.client_ports(impl))})")
        for conn in found:
            good, text = judge(conn)
            ok = ok and good
            parts.append(f"{impl} :{conn.client.port}: {text}")
    ctx.prove(name, ok, "; ".join(parts) or "no implementation ran")
    return ok


def earliest(*found: Segment | None) -> Segment | None:
    return min((s for s in found if s is not None), key=lambda s: s.time_ns, default=None)


def seconds_after(segment: Segment | None, origin: float | None) -> str:
    """When ``segment`` was seen, from ``origin`` (wall clock), in milliseconds: "+25.3 ms"."""
    if segment is None:
        return "none"
    if origin is None:
        return f"at {segment.time_ns / 1e9:.3f}"
    return f"{(segment.time_ns / 1e9 - origin) * 1000:+.1f} ms"


def _flag(segment: Segment) -> str:
    return "RST" if segment.has(RST) else "FIN"


def server_closed_first(conn: Conn, since: float | None) -> tuple[bool, str]:
    """The server sent FIN or RST at or after ``since``, before the client sent its own FIN or RST."""
    window = Window(since, None)
    server = earliest(conn.first(SERVER, FIN, window), conn.first(SERVER, RST, window))
    client = earliest(conn.first(CLIENT, FIN, window), conn.first(CLIENT, RST, window))
    ok = server is not None and (client is None or server.time_ns < client.time_ns)
    said = f"server {_flag(server)} {seconds_after(server, since)}" if server else "no FIN or RST from the server"
    heard = f"client {_flag(client)} {seconds_after(client, since)}" if client else "none from the client"
    return ok, f"{said}; {heard}"


def prove_restarted(ctx: ScenarioContext, port: int, before: Proc | None, killed_at: float) -> bool:
    """The process now behind ``port`` is a new one, started after ``killed_at`` (wall clock), not ``before``."""
    now = serving(ctx.server_agent.processes(), port)
    started = now.get("started") if now else None
    ok = (before is not None and now is not None and now.get("pid") != before.get("pid")
          and started is not None and started >= killed_at)
    when = ""
    if started is not None:
        gap = started - killed_at
        when = f", started {abs(gap):.3f} s {'after' if gap >= 0 else 'before'} the kill"
    ctx.prove(f"the server the clients used (port {port}) was restarted as a new process", ok,
              f"before the kill: {describe(before)}; now: {describe(now)}{when}")
    return ok
