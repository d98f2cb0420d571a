"""Packet evidence as text for people: one block per TCP connection, then its timeline.

:func:`render` is what ``capture.txt`` in a run's evidence folder holds and
what ``python -m lab.evidence FILE`` prints; ``--json`` prints
:meth:`~lab.evidence.tcp.CaptureSummary.as_dict` instead.

Without ``roles`` the two ends are "client" (who sent the SYN) and "server".
Who they really are is the caller's knowledge, not the capture's: on a path
through a proxy the client's "server" is the proxy, and so is the server's
"client". ``roles`` maps an :class:`~lab.evidence.pcap.Endpoint` (or a bare
port) to a name, and the text then says who sent each packet::

    render(summary, roles={Endpoint("172.18.0.4", 41234): "client[robust]", 7000: "toxiproxy"})
    # connection 1: client[robust] :41234 ⇄ toxiproxy:7000 (172.18.0.4:41234 → 172.18.0.3:7000): reset by toxiproxy
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lab.evidence.pcap import Endpoint
from lab.evidence.tcp import CaptureSummary, ConnectionSummary, DirectionSummary, Event

__all__ = ["render", "Roles", "named_outcome"]

Roles = Mapping[Endpoint | int, str]

_ROLES_NOTE = {"syn": "", "syn-ack": " (client's SYN not captured)",
               "server-port": " (handshake not captured: server by port)",
               "guess": " (handshake not captured: roles guessed, lower port as server)"}
_TIMELINE_LINES = 60


def render(summary: CaptureSummary, roles: Roles | None = None) -> str:
    """A short text for people: one block per connection, then its timeline."""
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items()))
    lines = [f"capture: {summary.frames} frames ({summary.link_type}), {summary.tcp_segments} TCP segments, "
             f"{summary.duration:.6f} s, {_plural(len(summary.connections), 'connection')}"
             + (f"; skipped {skipped}" if skipped else "")]
    for conn in summary.connections:
        client, server = _name(conn.client, roles, "client"), _name(conn.server, roles, "server")
        arrows = {"c2s": f"{client} → {server}", "s2c": f"{server} → {client}"}
        lines.append("")
        lines.append(f"connection {conn.index}: {_ends(conn, roles, client, server)}: "
                     f"{named_outcome(conn.outcome, client, server)}{_ROLES_NOTE[conn.roles_from]}")
        lines.append(f"  {arrows['c2s']}: {_direction_line(conn.client_to_server, 'SYN')}")
        lines.append(f"  {arrows['s2c']}: {_direction_line(conn.server_to_client, 'SYN-ACK')}")
        lines.append("  timeline:")
        lines.extend(_timeline_lines(conn.timeline, arrows))
    return "\n".join(lines) + "\n"


def _name(end: Endpoint, roles: Roles | None, default: str) -> str:
    if not roles:
        return default
    return roles.get(end) or roles.get(end.port) or default


def _ends(conn: ConnectionSummary, roles: Roles | None, client: str, server: str) -> str:
    plain = f"{conn.client} → {conn.server}"
    if not roles or (client, server) == ("client", "server"):
        return plain
    return f"{client} :{conn.client.port} ⇄ {server}:{conn.server.port} ({plain})"


def named_outcome(outcome: str, client: str, server: str) -> str:
    """A connection's outcome with its ends named: "reset by server" → "reset by toxiproxy"."""
    # The summary says "reset by server", "half-closed by client": name who it really was.
    for side, name in (("client", client), ("server", server)):
        if outcome.endswith(f" by {side}"):
            return outcome[: -len(side)] + name
    return outcome


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _direction_line(d: DirectionSummary, opener: str) -> str:
    flags = [(opener, d.syn if opener == "SYN" else d.syn_ack)]
    other = ("SYN-ACK", d.syn_ack) if opener == "SYN" else ("SYN", d.syn)
    if other[1].count:
        flags.append(other)
    flags += [("FIN", d.fin), ("RST", d.rst)]
    text = ", ".join(f"{stat.count} {name}" for name, stat in flags)
    text += f"; {d.payload_bytes} bytes, {_plural(d.retransmissions, 'retransmission')}"
    if d.acked_bytes is not None and d.acked_bytes != d.payload_bytes:
        text += f"; {d.acked_bytes} bytes acknowledged"
    extras = []
    if d.keepalive_probes:
        extras.append(f"{_plural(d.keepalive_probes, 'keepalive probe')} ({d.keepalive_answered} answered)")
    for count, word in ((d.zero_windows, "zero window"), (d.window_probes, "window probe"),
                        (d.duplicate_acks, "duplicate ACK")):
        if count:
            extras.append(_plural(count, word))
    return text + ("; " + ", ".join(extras) if extras else "")


def _runs(timeline: Sequence[Event]) -> list[tuple[list[Event], int]]:
    """(events, period) per line: runs of the same event (a burst of retransmissions, period 1),
    then runs of the same pair of events (a keepalive probe and its answer, again and again,
    period 2), each folded into one line."""
    singles: list[list[Event]] = []
    for event in timeline:
        if singles and _shape(singles[-1][0]) == _shape(event):
            singles[-1].append(event)
        else:
            singles.append([event])
    runs: list[tuple[list[Event], int]] = []
    i = 0
    while i < len(singles):
        pairs = 1
        if len(singles[i]) == 1 and i + 1 < len(singles) and len(singles[i + 1]) == 1:
            shape = (_shape(singles[i][0]), _shape(singles[i + 1][0]))
            while (i + 2 * pairs + 1 < len(singles) and len(singles[i + 2 * pairs]) == 1
                   and len(singles[i + 2 * pairs + 1]) == 1
                   and (_shape(singles[i + 2 * pairs][0]), _shape(singles[i + 2 * pairs + 1][0])) == shape):
                pairs += 1
        if pairs > 1:
            runs.append(([e for run in singles[i:i + 2 * pairs] for e in run], 2))
            i += 2 * pairs
        else:
            runs.append((singles[i], 1))
            i += 1
    return runs


def _shape(event: Event) -> tuple[str, str]:
    return event.direction, event.what


def _timeline_lines(timeline: Sequence[Event], arrows: Mapping[str, str]) -> list[str]:
    runs = _runs(timeline)
    lines = []
    for run, period in runs[:_TIMELINE_LINES]:
        first = run[0]
        text = f"    +{first.t:.6f} s  {arrows[first.direction]}  {first.what}"
        if first.what in ("first data", "last data", "retransmission") and first.seq is not None:
            text += f" (seq {first.seq}, {first.length} bytes)"
        if period == 2:
            text += f", then {arrows[run[1].direction]}  {run[1].what}; ×{len(run) // 2} until +{run[-1].t:.6f} s"
        elif len(run) > 1:
            text += f" ×{len(run)} until +{run[-1].t:.6f} s"
        lines.append(text)
    if len(runs) > _TIMELINE_LINES:
        lines.append(f"    … {len(runs) - _TIMELINE_LINES} more (--json lists every event)")
    return lines
