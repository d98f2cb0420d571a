"""A run as a sequence diagram: one SVG per scenario report, standard library only.

Lanes, left to right: one per client implementation (``client[robust]``,
``client[naive]``), ``toxiproxy``, ``server`` and ``lab`` (who injects the
faults). Time runs down the page with a scale in seconds on the left; every
timeline event is one row, drawn from its actor towards the lane it concerns:
echoes as arrows client ⇄ server, the fault as a red band across every lane,
errors as red crosses where they were detected (with the time since the fault
was in place), "BLOCKED at the watchdog" as a dark square after a dashed "stuck"
line. The RSTs and FINs the captures saw are arrows from the lane of whoever
sent them (Toxiproxy's from the Toxiproxy lane: :func:`lab.reports.results.roles_for`
says who is who). Runs of identical events of one actor (299 intact echoes) are
folded into one row (:func:`lab.inlab.timeline.fold`). The verdicts close the
picture. ::

    from lab.reports.picture import render_svg
    Path("timeline.svg").write_text(render_svg(report))   # report: lab.inlab.runner's JSON

Long quiet stretches (a 12 s watchdog) are compressed so the picture stays
readable; the axis marks where, and how long they were. Every piece of text
from the report is XML-escaped.
"""

from __future__ import annotations

import bisect
import heapq
import re

from lab.inlab.runreport import RunReport
from lab.inlab.timeline import Run, fault_in_place, fold, in_place_event
from typing import Any
from xml.sax.saxutils import escape, quoteattr

__all__ = ["Row", "lanes_for", "rows_for", "packet_events", "render_svg"]

# Geometry, in SVG user units (pixels).
AXIS_W = 120          # the time scale on the left
LANE_W = 205          # distance between two lanes
RIGHT_PAD = 40
TOP = 64              # below the title
HEADER_H = 34         # lane name boxes
ROW_H = 30            # minimum distance between two rows
PX_PER_S = 80         # time scale where time is not compressed
MAX_GAP = 70          # a quiet stretch longer than MAX_GAP / PX_PER_S seconds is compressed
LABEL_CHARS = 70      # longer messages are cut (the full text is in the report)
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

COLOURS = {"ok": "#1b7f3b", "error": "#c62828", "blocked": "#6a1b1b", "fault": "#d32f2f", "echo": "#2e7d32",
           "corrupt": "#e65100", "send": "#1565c0", "muted": "#757575", "lane": "#9e9e9e", "text": "#212121"}
LANE_FILL = {"client": "#e3f2fd", "toxiproxy": "#f3e5f5", "server": "#e8f5e9", "lab": "#ffebee"}

_DRAWN_PACKETS = ("RST", "FIN")   # the packets that end conversations: who sent them is the lesson

Row = Run   # one row of the diagram: an event, or a folded run of identical events


def lanes_for(report: RunReport) -> list[str]:
    """The lanes, left to right: the judged clients first, then any other client seen, then the path."""
    lanes = [f"client[{impl}]" for impl in report.get("verdicts", {})]
    for event in report.get("timeline", []):
        actor = str(event.get("actor", ""))
        if actor.startswith("client") and actor not in lanes:
            lanes.append(actor)
    return lanes + ["toxiproxy", "server", "lab"]


def rows_for(timeline: list[dict[str, Any]]) -> list[Row]:
    """Timeline events as rows, runs of identical events of one actor folded (lab.inlab.timeline.fold)."""
    return fold(timeline)


def packet_events(report: RunReport) -> list[dict[str, Any]]:
    """The RSTs and FINs the captures saw on the lanes' connections, as timeline events of their sender.

    Capture times are wall-clock; the timeline's are seconds since the run began. The runner
    took ``facts["fault_wall"]`` just before it marked "fault in place", which ties the two
    clocks together; without that mark no packet is placed.
    """
    from lab.evidence import CaptureSummary
    from lab.reports.results import roles_for, summaries

    anchor, wall = in_place_event(report), report.get("facts", {}).get("fault_wall")
    if anchor is None or isinstance(wall, bool) or not isinstance(wall, (int, float)):
        return []
    offset = float(anchor["t"]) - wall
    lanes = set(lanes_for(report))
    events = []
    for where, summary in summaries(report).items():
        if not isinstance(summary, CaptureSummary) or summary.start is None:
            continue
        names = roles_for(report, where, summary)
        for conn in summary.connections:
            client, server = names.get(conn.client), names.get(conn.server)
            # The lab's own connections (fillers, probes: port-exhaustion opens thousands) have no lane.
            if client not in lanes or server not in lanes or "lab" in (client, server):
                continue
            for event in conn.timeline:
                if event.what in _DRAWN_PACKETS:
                    sender, receiver = (client, server) if event.direction == "c2s" else (server, client)
                    events.append({"t": round(summary.start + event.t + offset, 4), "actor": sender,
                                   "what": event.what, "to": receiver, "capture": f"{where}.pcap"})
    return sorted(events, key=lambda e: e["t"])


class _Scale:
    """Time → y: linear between rows, with long quiet stretches compressed."""

    def __init__(self, times: list[float], top: float) -> None:
        self.points: list[tuple[float, float]] = [(0.0, top)]
        self.breaks: list[tuple[float, float, float]] = []   # (y from, y to, seconds) of compressed gaps
        self.row_y: list[float] = []
        t_prev, y_prev = 0.0, top
        for t in times:
            dt = max(t - t_prev, 0.0)
            gap = dt * PX_PER_S
            y = y_prev + ROW_H + min(gap, MAX_GAP)
            if gap > MAX_GAP:
                self.breaks.append((y_prev, y, dt))
            if t > t_prev:
                self.points.append((t, y))
            self.row_y.append(y)
            t_prev, y_prev = max(t, t_prev), y
        self.bottom = y_prev

    def y(self, t: float) -> float:
        ts = [p[0] for p in self.points]
        i = bisect.bisect_right(ts, t)
        if i == 0:
            return self.points[0][1]
        if i >= len(self.points):
            return self.points[-1][1]
        (t0, y0), (t1, y1) = self.points[i - 1], self.points[i]
        return y0 + (y1 - y0) * (t - t0) / (t1 - t0)


def _nice_step(duration: float) -> float:
    for step in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if duration / step <= 12:
            return step
    return 120.0


def _short(value: Any, limit: int = LABEL_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, content: str, *, anchor: str = "start", size: int = 12,
             colour: str = COLOURS["text"], weight: str = "normal", italic: bool = False, halo: bool = True) -> None:
        style = " font-style=\"italic\"" if italic else ""
        halo_attrs = ' stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"' if halo else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}" '
                 f'font-weight="{weight}"{style}{halo_attrs}>{escape(content)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, colour: str, width: float = 1.5,
             dash: str | None = None, start: str | None = None, end: str | None = None) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        extra += f' marker-start="url(#{start})"' if start else ""
        extra += f' marker-end="url(#{end})"' if end else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                 f'stroke-width="{width}"{extra}/>')


def _arrow_defs() -> str:
    markers = []
    for name, colour in (("echo", COLOURS["echo"]), ("corrupt", COLOURS["corrupt"]), ("send", COLOURS["send"]),
                         ("muted", COLOURS["muted"]), ("fault", COLOURS["fault"])):
        markers.append(
            f'<marker id="head-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')
    return "<defs>" + "".join(markers) + "</defs>"


def _fact_text(facts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v, 40)}" for k, v in facts.items() if v is not None and k != "message")


def render_svg(report: RunReport) -> str:
    """The sequence diagram of one scenario report, as a complete SVG document."""
    scenario = report.get("scenario", {})
    lanes = lanes_for(report)
    lane_x = {lane: AXIS_W + LANE_W * (i + 0.5) for i, lane in enumerate(lanes)}
    width = AXIS_W + LANE_W * len(lanes) + RIGHT_PAD
    rows = rows_for(list(heapq.merge(report.get("timeline", []), packet_events(report), key=lambda e: e["t"])))
    rows_top = TOP + HEADER_H + 24
    scale = _Scale([row.t for row in rows], rows_top)
    fault_at = report.get("fault_at")
    in_place = fault_in_place(report)
    verdict_lines = _verdict_lines(report)
    height = scale.bottom + 50 + 20 * len(verdict_lines)

    svg = _Svg()
    svg.add(f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>')
    svg.text(16, 26, f"{scenario.get('title', '?')} ({scenario.get('name', '?')})", size=18, weight="bold")
    svg.text(16, 46, f"HOWTO: {scenario.get('howto', '?')} · path: {scenario.get('path', '?')} · "
                     f"time runs down, in seconds since the scenario started", size=12, colour=COLOURS["muted"])

    direct = scenario.get("path") == "direct"
    _draw_lanes(svg, lanes, lane_x, direct, top=TOP, bottom=scale.bottom + 20)
    _draw_axis(svg, scale, rows, top=rows_top, bottom=scale.bottom)
    for y_from, y_to, seconds in scale.breaks:
        mid = (y_from + y_to) / 2
        svg.add(f'<rect x="{AXIS_W:.0f}" y="{y_from + ROW_H / 2:.1f}" width="{LANE_W * len(lanes):.0f}" '
                f'height="{max(y_to - y_from - ROW_H, 4):.1f}" fill="#fafafa" opacity="0.8"/>')
        svg.text(AXIS_W + LANE_W * len(lanes) / 2, mid + 10, f"… {seconds:.2f} s pass (drawn shorter) …",
                 anchor="middle", size=11, colour=COLOURS["muted"], italic=True)

    blocked_from = _stuck_segments(rows, scale)
    for actor, (y0, y1) in blocked_from.items():
        if actor in lane_x:
            svg.line(lane_x[actor], y0 + 6, lane_x[actor], y1 - 8, colour=COLOURS["blocked"], width=3, dash="6 4")
            svg.text(lane_x[actor] + 8, y0 + 28, "inside a call, waiting", size=11,
                     colour=COLOURS["blocked"], italic=True)

    for row, y in zip(rows, scale.row_y):
        if row.until is not None and row.actor in lane_x:
            # A folded run of echoes lasts: a bar on the client's lane down to its last echo.
            svg.add(f'<rect x="{lane_x[row.actor] - 3:.1f}" y="{y:.1f}" width="6" '
                    f'height="{max(scale.y(row.until) - y, 0):.1f}" fill="{COLOURS["echo"]}" opacity="0.45"/>')
        _draw_row(svg, row, y, lane_x, lanes, (fault_at, in_place), direct)

    y = scale.bottom + 44
    svg.add(f'<line x1="16" y1="{y - 20:.1f}" x2="{width - 16:.0f}" y2="{y - 20:.1f}" stroke="#bdbdbd"/>')
    for text, colour, weight in verdict_lines:
        svg.text(16, y, text, size=13, colour=colour, weight=weight, halo=False)
        y += 20

    body = "\n".join(svg.parts)
    title = escape(f"Sequence diagram: {scenario.get('name', '?')}")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family={quoteattr(FONT)}>\n'
            f"<title>{title}</title>\n{_arrow_defs()}\n{body}\n</svg>\n")


def _draw_lanes(svg: _Svg, lanes: list[str], lane_x: dict[str, float], direct: bool, *, top: float,
                bottom: float) -> None:
    for lane in lanes:
        x = lane_x[lane]
        kind = "client" if lane.startswith("client") else lane
        off_path = direct and lane == "toxiproxy"
        svg.add(f'<rect x="{x - 80:.1f}" y="{top:.1f}" width="160" height="{HEADER_H}" rx="6" '
                f'fill="{LANE_FILL.get(kind, "#eeeeee")}" stroke="#9e9e9e"/>')
        svg.text(x, top + 22, lane, anchor="middle", size=13, weight="bold", halo=False,
                 colour=COLOURS["muted"] if off_path else COLOURS["text"])
        svg.line(x, top + HEADER_H, x, bottom, colour=COLOURS["lane"], width=1, dash="3 5" if off_path else None)
        if off_path:
            svg.text(x, top + HEADER_H + 14, "(not on this path: direct)", anchor="middle", size=10,
                     colour=COLOURS["muted"], italic=True)


def _draw_axis(svg: _Svg, scale: _Scale, rows: list[Row], *, top: float, bottom: float) -> None:
    x = AXIS_W - 30
    svg.line(x, top - 10, x, bottom + 10, colour="#616161", width=1.2)
    svg.text(x, top - 16, "seconds", anchor="middle", size=11, colour=COLOURS["muted"], halo=False)
    duration = rows[-1].t if rows else 0.0
    step = _nice_step(max(duration, 0.05))
    compressed = [(a, b) for a, b, _ in scale.breaks]
    last_label = -1e9
    k = 0
    while k * step <= duration + 1e-9:
        t = round(k * step, 6)
        y = scale.y(t)
        # A tick inside a compressed stretch would sit on top of the next row's label.
        inside_break = any(a + 2 < y < b - 2 for a, b in compressed)
        if not inside_break and y - last_label >= 16:
            svg.line(x - 5, y, x, y, colour="#616161", width=1.2)
            svg.text(x - 8, y + 4, f"{t:g} s", anchor="end", size=11, colour="#424242", halo=False)
            last_label = y
        k += 1
    for a, b in compressed:
        # A break mark on the axis: this stretch is drawn shorter than it lasted.
        mid = (a + b) / 2
        svg.add(f'<path d="M{x - 7},{mid - 2} l14,-6 M{x - 7},{mid + 6} l14,-6" stroke="#616161" '
                f'stroke-width="1.5" fill="none"/>')


def _stuck_segments(rows: list[Row], scale: _Scale) -> dict[str, tuple[float, float]]:
    """For each blocked client: from its last event before the watchdog to the watchdog row."""
    found: dict[str, tuple[float, float]] = {}
    last_y: dict[str, float] = {}
    for row, y in zip(rows, scale.row_y):
        if row.what.startswith("BLOCKED"):
            found[row.actor] = (last_y.get(row.actor, y), y)
        last_y[row.actor] = max(y, scale.y(row.until)) if row.until is not None else y
    return found


def _draw_row(svg: _Svg, row: Row, y: float, lane_x: dict[str, float], lanes: list[str],
              fault: tuple[Any, float | None], direct: bool) -> None:
    fault_at, in_place = fault
    x_actor = lane_x.get(row.actor, lane_x["server"] if row.actor.startswith("server") else lane_x["lab"])
    x_server, x_lab = lane_x["server"], lane_x["lab"]
    time_note = f"+{row.t:.3f} s"
    what = row.what
    if row.actor == "lab" and (what.startswith("fault:") or what.startswith("ABORTED")):
        left = lane_x[lanes[0]] - 70
        svg.add(f'<rect x="{left:.1f}" y="{y - 4:.1f}" width="{x_lab + 70 - left:.1f}" height="8" '
                f'fill="{COLOURS["fault"]}" opacity="0.85"/>')
        label = what.upper().replace("FAULT:", "FAULT:", 1) if what.startswith("fault:") else what
        extra = _fact_text(row.facts)
        svg.text((left + x_lab) / 2, y - 9, f"{label}" + (f" ({extra})" if extra else "") + f"  {time_note}",
                 anchor="middle", size=13, colour=COLOURS["fault"], weight="bold")
        return
    if what in ("echo intact", "echo CORRUPT"):
        kind = "echo" if what == "echo intact" else "corrupt"
        svg.line(x_actor + 6, y, x_server - 6, y, colour=COLOURS[kind], width=2 if kind == "echo" else 3,
                 start=f"head-{kind}", end=f"head-{kind}")
        if not direct and "toxiproxy" in lane_x:
            svg.add(f'<circle cx="{lane_x["toxiproxy"]:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[kind]}"/>')
        seq = row.facts.get("seq")
        label = f"echo #{seq}" if row.count == 1 else f"echo #{seq}–#{row.last_seq} (×{row.count})"
        label += " intact" if kind == "echo" else " CORRUPT"
        if row.facts.get("bytes") is not None:
            label += f", {row.facts['bytes']} B" + (" each" if row.count > 1 else "")
        if row.until is not None:
            label += f", until +{row.until:.3f} s"
        svg.text((x_actor + x_server) / 2, y - 6, f"{label}  {time_note}", anchor="middle", size=11,
                 colour=COLOURS[kind])
        return
    if row.actor.startswith("client") and what in ("connected", "connecting", "sending after the fault"):
        kind = "send" if what.startswith("sending") else "muted"
        svg.line(x_actor + 6, y, x_server - 6, y, colour=COLOURS[kind], width=1.5, dash="5 3", end=f"head-{kind}")
        svg.text((x_actor + x_server) / 2, y - 6, f"{what}  {time_note}", anchor="middle", size=11,
                 colour=COLOURS[kind])
        return
    if row.facts.get("capture") and row.facts.get("to") in lane_x:
        _draw_packet(svg, row, y, x_actor, lane_x[row.facts["to"]], time_note)
        return
    if what.startswith("ERROR"):
        c = COLOURS["error"]
        svg.add(f'<path d="M{x_actor - 7},{y - 7} l14,14 M{x_actor - 7},{y + 7} l14,-14" stroke="{c}" '
                f'stroke-width="3.5"/>')
        since = ""
        if in_place is not None:
            since = f", detected {row.t - in_place:.3f} s after the fault was in place"
        errno = f" [{row.facts['errno']}]" if row.facts.get("errno") else ""
        svg.text(x_actor + 14, y - 2, f"{what}{errno}  {time_note}{since}", size=12, colour=c, weight="bold")
        if row.facts.get("message"):
            svg.text(x_actor + 14, y + 12, _short(row.facts["message"]), size=10, colour=c)
        return
    if what.startswith("BLOCKED"):
        c = COLOURS["blocked"]
        svg.add(f'<rect x="{x_actor - 8:.1f}" y="{y - 8:.1f}" width="16" height="16" fill="{c}"/>')
        svg.text(x_actor + 14, y + 4, f"{what} ({row.facts.get('watchdog_s', '?')} s)  {time_note}", size=12,
                 colour=c, weight="bold")
        return
    if what == "completed":
        c = COLOURS["ok"]
        svg.add(f'<path d="M{x_actor - 7},{y} l5,6 l10,-12" stroke="{c}" stroke-width="3.5" fill="none"/>')
        svg.text(x_actor + 14, y + 4, f"completed ({row.facts.get('exchanges', '?')} exchanges)  {time_note}",
                 size=12, colour=c, weight="bold")
        return
    # Anything else: a dot on the actor's lane, labelled; the lab's own notes point at the server.
    colour = COLOURS["fault"] if what.startswith("fault in place") else COLOURS["muted"]
    extra = _fact_text(row.shown_facts())
    if what.startswith("fault in place") and row.t == in_place and isinstance(fault_at, (int, float)) \
            and in_place - fault_at >= 0.0005:
        extra = f"{in_place - fault_at:.3f} s after it was asked for: times since the fault count from here"
    label = _short(f"{row.label()}" + (f" ({extra})" if extra else ""), 110) + f"  {time_note}"
    svg.add(f'<circle cx="{x_actor:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
    if x_actor >= x_lab:
        svg.text(x_actor - 10, y + 4, label, anchor="end", size=11, colour=colour)
    else:
        svg.text(x_actor + 10, y + 4, label, size=11, colour=colour)


def _draw_packet(svg: _Svg, row: Row, y: float, x_from: float, x_to: float, time_note: str) -> None:
    """An RST or FIN a capture saw, as an arrow from the lane of its sender to its receiver's."""
    kind = "fault" if row.what == "RST" else "muted"
    step = 6 if x_to > x_from else -6
    svg.line(x_from + step, y, x_to - step, y, colour=COLOURS[kind], width=2 if kind == "fault" else 1.5,
             end=f"head-{kind}")
    label = f"{row.label()} from {row.actor} to {row.facts['to']} (in {row.facts['capture']})"
    svg.text((x_from + x_to) / 2, y - 6, f"{label}  {time_note}", anchor="middle", size=11, colour=COLOURS[kind])


def _verdict_lines(report: RunReport) -> list[tuple[str, str, str]]:
    """(text, colour, weight) lines for the bottom of the picture."""
    lines: list[tuple[str, str, str]] = []
    for impl, verdict in report.get("verdicts", {}).items():
        ok = verdict.get("ok")
        failed = [c["name"] for c in verdict.get("checks", []) if not c.get("ok")]
        outcome = next((c.get("detail", "") for c in verdict.get("checks", []) if c.get("name") == "outcome"), "")
        outcome = re.sub(r"\s*\(.*\)$", "", outcome)
        text = f"{impl}: {'PASS' if ok else 'FAIL'} — {outcome}"
        if failed:
            text += f"; failed: {', '.join(failed)}"
        lines.append((_short(text, 150), COLOURS["ok"] if ok else COLOURS["error"], "bold"))
    fidelity = report.get("fidelity", [])
    proven = report.get("fidelity_ok")
    lines.append((f"fault really happened: {'yes' if proven else 'NOT PROVEN'} "
                  f"({sum(1 for c in fidelity if c.get('ok'))}/{len(fidelity)} checks)",
                  COLOURS["ok"] if proven else COLOURS["error"], "normal"))
    if report.get("aborted"):
        lines.append((_short(f"ABORTED: {report['aborted']}", 150), COLOURS["error"], "bold"))
    lines.append((f"verdict: {'PASS' if report.get('ok') else 'FAIL'}",
                  COLOURS["ok"] if report.get("ok") else COLOURS["error"], "bold"))
    return lines
