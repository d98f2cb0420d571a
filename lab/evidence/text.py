"""Packet evidence as text for people: one block per TCP connection, then its timeline.

:func:`render` is what ``capture.txt`` in a run's evidence folder holds and
what ``python -m lab.evidence FILE`` prints; ``--json`` prints
:meth:`~lab.evidence.tcp.CaptureSummary.as_dict` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.evidence.tcp import CaptureSummary, DirectionSummary, Event

__all__ = ["render"]

ARROWS: dict[str, str] = {"c2s": "client → server", "s2c": "server → client"}
_ROLES_NOTE = {"syn": "", "syn-ack": " (client's SYN not captured)",
               "server-port": " (handshake not captured: server by port)",
               "guess": " (handshake not captured: roles guessed, lower port as server)"}
_TIMELINE_LINES = 60


def render(summary: CaptureSummary) -> str:
    """A short text for people: one block per connection, then its timeline."""
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items()))
    lines = [f"capture: {summary.frames} frames ({summary.link_type}), {summary.tcp_segments} TCP segments, "
             f"{summary.duration:.6f} s, {_plural(len(summary.connections), 'connection')}"
             + (f"; skipped {skipped}" if skipped else "")]
    for conn in summary.connections:
        lines.append("")
        lines.append(f"connection {conn.index}: {conn.client} → {conn.server}: {conn.outcome}"
                     f"{_ROLES_NOTE[conn.roles_from]}")
        lines.append(f"  client → server: {_direction_line(conn.client_to_server, 'SYN')}")
        lines.append(f"  server → client: {_direction_line(conn.server_to_client, 'SYN-ACK')}")
        lines.append("  timeline:")
        lines.extend(_timeline_lines(conn.timeline))
    return "\n".join(lines) + "\n"


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


def _timeline_lines(timeline: Sequence[Event]) -> list[str]:
    # Runs of the same event (a burst of retransmissions) are folded into one line.
    runs: list[list[Event]] = []
    for event in timeline:
        if runs and (runs[-1][0].direction, runs[-1][0].what) == (event.direction, event.what):
            runs[-1].append(event)
        else:
            runs.append([event])
    lines = []
    for run in runs[:_TIMELINE_LINES]:
        first = run[0]
        text = f"    +{first.t:.6f} s  {ARROWS[first.direction]}  {first.what}"
        if first.what in ("first data", "last data", "retransmission") and first.seq is not None:
            text += f" (seq {first.seq}, {first.length} bytes)"
        if len(run) > 1:
            text += f" ×{len(run)} until +{run[-1].t:.6f} s"
        lines.append(text)
    if len(runs) > _TIMELINE_LINES:
        lines.append(f"    … {len(runs) - _TIMELINE_LINES} more (--json lists every event)")
    return lines
