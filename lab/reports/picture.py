"""A run as a sequence diagram: one SVG per scenario report, standard library only.

Lanes, left to right: one per client implementation (``client[robust]``,
``client[naive]``), ``toxiproxy``, ``server`` and ``lab`` (who injects the
faults). Time runs down the page with a scale in seconds on the left; every
timeline event is one row, drawn from its actor towards the lane it concerns:
echoes as arrows client ⇄ server, heartbeats (PING, and PING answered by PONG) as
thin arrows, the fault as a red band across every lane, errors as red crosses
where they were detected (with the time since the fault was in place), "BLOCKED at
the watchdog" as a dark square after a dashed "stuck" line. The RSTs and FINs the
captures saw are arrows from the lane of whoever sent them (Toxiproxy's from the
Toxiproxy lane: :func:`lab.reports.results.roles_for` says who is who). Runs of
identical events of one actor (299 intact echoes, five PINGs) are folded into one
row (:func:`lab.inlab.timeline.fold`). The verdicts close the picture. ::

    from lab.reports.picture import render_svg
    Path("timeline.svg").write_text(render_svg(report))   # report: lab.inlab.runner's JSON

Made to be read on a projector: no text under 14 px, and no label is cut, overlaps
another or has a line drawn through it. Each row gets its own band of the page, as
tall as its wrapped labels; a label is wrapped to the room between the lanes that a
stuck line or an echo bar occupies at that row, and the lanes' own thin lines leave a
gap wherever a label crosses them. Widths come from :mod:`lab.reports.textbox`, the
same estimate the tests measure the finished SVG with.

Long quiet stretches (a 12 s watchdog) are compressed so the picture stays
readable; the axis marks where, and how long they were. Every piece of text
from the report is XML-escaped.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import re
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lab.inlab.runreport import RunReport
from lab.inlab.timeline import Run, fault_in_place, fold, in_place_event
from lab.reports.textbox import ASCENT_EM, DESCENT_EM, LINE_EM, Box, free_spans, text_box, wrap

__all__ = ["Row", "lanes_for", "rows_for", "packet_events", "heartbeat_events", "render_svg"]

# Geometry, in SVG user units (pixels).
AXIS_W = 110          # the time scale on the left
LANE_W = 250          # distance between two lanes
RIGHT_PAD = 40
HEADER_H = 36         # lane name boxes
ROW_PAD = 8           # the least room between two rows' bands
PX_PER_S = 80         # time scale where time is not compressed
MAX_GAP = 60          # a quiet stretch longer than MAX_GAP / PX_PER_S seconds is compressed
SIZE = 14             # every label; nothing in the picture is smaller (a projector's back row)
TITLE_SIZE, LANE_SIZE, VERDICT_SIZE = 20, 15, 15
LINE_H = SIZE * LINE_EM
GAP_TO_TEXT = 10      # between a lane (a stuck line, an echo bar) and a label beside it
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"   # one width for every glyph: see lab.reports.textbox

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


_PINGS = re.compile(r"despite PINGs every (\d+(?:\.\d+)?)s")
_HEARTBEATS = ("PING", "PONG")


def heartbeat_events(report: RunReport) -> list[dict[str, Any]]:
    """The PINGs a client sent, as timeline events, for a report whose runner did not mark them.

    Runners since issue 13 mark every "PING" and "PONG" themselves. Before that only robust's
    counter (``measurements["pings_sent"]``) and its error ("no byte … despite PINGs every 1s")
    tell of them: robust sends one PING after each interval of silence while it waits, so the
    n-th went out n intervals after the client's last event before the error. Those events say
    ``inferred``, and the picture says so.
    """
    timeline = report.get("timeline", [])
    events: list[dict[str, Any]] = []
    for impl, verdict in report.get("verdicts", {}).items():
        actor = f"client[{impl}]"
        mine = [e for e in timeline if e.get("actor") == actor]
        if any(e.get("what") in _HEARTBEATS for e in mine):
            continue
        outcome = verdict.get("outcome") or {}
        count = (outcome.get("measurements") or {}).get("pings_sent")
        every = _PINGS.search(str(outcome.get("message") or ""))
        error = next((e for e in mine if str(e.get("what", "")).startswith("ERROR")), None)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1 or every is None or error is None:
            continue
        before = [e for e in mine if e["t"] < error["t"]]
        if not before:
            continue
        for k in range(1, count + 1):
            t = round(before[-1]["t"] + k * float(every.group(1)), 4)
            if t < error["t"]:
                events.append({"t": t, "actor": actor, "what": "PING", "seq": k,
                               "inferred": "robust's count and interval"})
    return sorted(events, key=lambda e: e["t"])


def _pair_heartbeats(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each PONG folded into its PING as one "PING answered" event, so answered heartbeats fold too.

    PING, PONG, PING, PONG of one client are different events in a row, which :func:`fold`
    keeps apart; as "PING answered" ×5 they are one row.
    """
    out: list[dict[str, Any]] = []
    pending: dict[tuple[str, Any], int] = {}
    for event in timeline:
        what, actor = event.get("what"), event.get("actor")
        if what == "PING":
            pending[(actor, event.get("seq"))] = len(out)
        elif what == "PONG" and (actor, event.get("seq")) in pending:
            i = pending.pop((actor, event.get("seq")))
            rtt = round(float(event["t"]) - float(out[i]["t"]), 4)
            out[i] = {**out[i], "what": "PING answered", "rtt_s": rtt}
            continue
        out.append(event)
    # A PING's row must not hold its later PONG's fact: rtt is per heartbeat, the fold shows the first.
    return out


class _Scale:
    """Time → y: each row's band below the one before, quiet stretches as time, long ones compressed."""

    def __init__(self, times: list[float], extents: list[tuple[float, float]], top: float) -> None:
        self.points: list[tuple[float, float]] = [(0.0, top)]
        self.breaks: list[tuple[int, float, float, float]] = []   # (row after it, y from, y to, seconds)
        self.row_y: list[float] = []
        t_prev, y_prev, below_prev = 0.0, top, 0.0
        for i, (t, (above, below)) in enumerate(zip(times, extents)):
            dt = max(t - t_prev, 0.0)
            gap = dt * PX_PER_S
            y = y_prev + below_prev + ROW_PAD + min(gap, MAX_GAP) + above
            if gap > MAX_GAP:
                self.breaks.append((i, y_prev + below_prev + 2, y - above - 2, dt))
            if t > t_prev:
                self.points.append((t, y))
            self.row_y.append(y)
            t_prev, y_prev, below_prev = max(t, t_prev), y, below
        self.bottom = y_prev + below_prev

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


class _Svg:
    """The document's elements; every text's box is kept, for the lanes' gaps."""

    def __init__(self) -> None:
        self.under: list[str] = []      # drawn first: the lanes' lines, with gaps where text crosses them
        self.parts: list[str] = []
        self.boxes: list[Box] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, lines: list[str] | str, *, anchor: str = "start", size: int = SIZE,
             colour: str = COLOURS["text"], weight: str = "normal", italic: bool = False,
             line_h: float | None = None) -> None:
        """One label: a <text> with one <tspan> per line, baselines ``line_h`` apart from ``y`` down."""
        lines = [lines] if isinstance(lines, str) else lines
        step = line_h if line_h is not None else size * LINE_EM
        style = ' font-style="italic"' if italic else ""
        spans = []
        for k, line in enumerate(lines):
            yk = y + k * step
            self.boxes.append(text_box(x, yk, line, size, anchor))
            spans.append(f'<tspan x="{x:.1f}" y="{yk:.1f}">{escape(line)}</tspan>')
        # The spaces between the tspans give the label's words back to a reader of the text
        # (and to itertext): at a line's end they are not drawn.
        self.add(f'<text text-anchor="{anchor}" font-size="{size}" fill="{colour}" font-weight="{weight}"{style}>'
                 + " ".join(spans) + "</text>")

    def line(self, x1: float, y1: float, x2: float, y2: float, *, colour: str, width: float = 1.5,
             dash: str | None = None, start: str | None = None, end: str | None = None) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        extra += f' marker-start="url(#{start})"' if start else ""
        extra += f' marker-end="url(#{end})"' if end else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                 f'stroke-width="{width}"{extra}/>')

    def lifeline(self, x: float, top: float, bottom: float, *, dash: str | None) -> None:
        """A lane's vertical line, interrupted wherever a label's box crosses it."""
        cuts = sorted((b.y0 - 2, b.y1 + 2) for b in self.boxes if b.x0 - 2 < x < b.x1 + 2 and b.y1 > top
                      and b.y0 < bottom)
        y = top
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        for c0, c1 in cuts + [(bottom, bottom)]:
            if c0 > y:
                self.under.append(f'<line class="lane" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{c0:.1f}" '
                                  f'stroke="{COLOURS["lane"]}" stroke-width="1"{extra}/>')
            y = max(y, c1)


def _arrow_defs() -> str:
    # userSpaceOnUse: a head is 10 px whatever the line's width, so a label 10 px above clears it.
    markers = []
    for name, colour in (("echo", COLOURS["echo"]), ("corrupt", COLOURS["corrupt"]), ("send", COLOURS["send"]),
                         ("muted", COLOURS["muted"]), ("fault", COLOURS["fault"])):
        markers.append(
            f'<marker id="head-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
            f'markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>')
    return "<defs>" + "".join(markers) + "</defs>"


def _fact_text(facts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={' '.join(str(v).split())}" for k, v in facts.items()
                     if v is not None and k != "message")


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclasses.dataclass
class _Label:
    """A label of one row: where it may go, then (after :func:`_fit`) its lines and its x."""

    text: str
    colour: str
    weight: str = "normal"
    italic: bool = False
    lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Plan:
    """One row: its mark (drawn at the row's y) and its labels, above the mark or beside it.

    ``mode``: "above" (centred over an arrow or band between ``lo`` and ``hi``), "right"
    (starting at ``lo``) or "left" (ending at ``hi``). ``near`` picks among the stretches a
    stuck line leaves free: the one at the ``lo`` end, the ``hi`` end, or the widest.
    """

    row: Row
    own_x: float
    mode: str
    lo: float
    hi: float
    labels: list[_Label]
    draw: Callable[[_Svg, float], None]
    near: str = "lo"
    x: float = 0.0
    mark_above: float = 8.0
    mark_below: float = 8.0

    @property
    def n_lines(self) -> int:
        return sum(len(label.lines) for label in self.labels)

    def extents(self) -> tuple[float, float]:
        """How far the row's band reaches above and below its y."""
        if self.mode == "above":
            return GAP_TO_TEXT + (self.n_lines - 1) * LINE_H + ASCENT_EM * SIZE, self.mark_below
        first = 5.0   # the first line's baseline, below the mark's centre
        return (max(self.mark_above, ASCENT_EM * SIZE - first),
                max(self.mark_below, first + (self.n_lines - 1) * LINE_H + DESCENT_EM * SIZE))

    def baselines(self, y: float) -> list[float]:
        n = self.n_lines
        if self.mode == "above":
            return [y - GAP_TO_TEXT - (n - 1 - k) * LINE_H for k in range(n)]
        return [y + 5.0 + k * LINE_H for k in range(n)]


def _fit(plan: _Plan, blocked: list[float]) -> None:
    """Choose the free stretch for the row's labels and wrap them to its width."""
    spans = free_spans(plan.lo, plan.hi, [x for x in blocked if abs(x - plan.own_x) > 1], GAP_TO_TEXT)
    if not spans:
        spans = [(plan.lo, plan.hi)]
    if plan.near == "wide":
        a, b = max(spans, key=lambda s: s[1] - s[0])
    else:
        a, b = spans[0] if plan.near == "lo" else spans[-1]
    plan.x = {"above": (a + b) / 2, "right": a, "left": b}[plan.mode]
    for label in plan.labels:
        label.lines = wrap(label.text, b - a, SIZE)


def render_svg(report: RunReport) -> str:
    """The sequence diagram of one scenario report, as a complete SVG document."""
    scenario = report.get("scenario", {})
    lanes = lanes_for(report)
    lane_x = {lane: AXIS_W + LANE_W * (i + 0.5) for i, lane in enumerate(lanes)}
    width = AXIS_W + LANE_W * len(lanes) + RIGHT_PAD
    events = heapq.merge(report.get("timeline", []), heartbeat_events(report), packet_events(report),
                         key=lambda e: e["t"])
    rows = rows_for(_pair_heartbeats(list(events)))
    fault_at = report.get("fault_at")
    in_place = fault_in_place(report)
    direct = scenario.get("path") == "direct"

    svg = _Svg()
    svg.text(16, 30, wrap(f"{scenario.get('title', '?')} ({scenario.get('name', '?')})", width - 32, TITLE_SIZE),
             size=TITLE_SIZE, weight="bold")
    title_lines = len(svg.boxes)
    subtitle = wrap(f"HOWTO: {scenario.get('howto', '?')} · path: {scenario.get('path', '?')} · time runs down, "
                    f"in seconds since the scenario started", width - 32, SIZE)
    sub_y = 30 + title_lines * TITLE_SIZE * LINE_EM + 4
    svg.text(16, sub_y, subtitle, colour=COLOURS["muted"])
    top = sub_y + (len(subtitle) - 1) * LINE_H + 22

    plans = [_plan_row(row, lane_x, lanes, (fault_at, in_place), direct, width) for row in rows]
    obstacles = _obstacles(rows, plans)
    for j, plan in enumerate(plans):
        _fit(plan, [x for x, a, b in obstacles if a <= j <= b])
    rows_top = top + HEADER_H + 30
    scale = _Scale([row.t for row in rows], [plan.extents() for plan in plans], rows_top)
    verdict_lines = [(wrap(text, width - 32, VERDICT_SIZE), colour, weight)
                     for text, colour, weight in _verdict_lines(report)]
    verdict_top = scale.bottom + 50
    height = verdict_top + sum(len(lines) for lines, _, _ in verdict_lines) * VERDICT_SIZE * LINE_EM + 10

    _draw_lane_heads(svg, lanes, lane_x, direct, top=top)
    _draw_axis(svg, scale, rows, top=rows_top, bottom=scale.bottom)
    for after, y_from, y_to, seconds in scale.breaks:
        svg.under.append(f'<rect class="bg" x="{AXIS_W:.0f}" y="{y_from:.1f}" width="{LANE_W * len(lanes):.0f}" '
                         f'height="{max(y_to - y_from, 1):.1f}" fill="#f5f5f5"/>')
        blocked = [x for x, a, b in obstacles if a <= after - 1 and b >= after]
        spans = free_spans(AXIS_W, AXIS_W + LANE_W * len(lanes), blocked, GAP_TO_TEXT)
        a, b = max(spans, key=lambda s: s[1] - s[0])
        lines = wrap(f"{seconds:.2f} s pass here (drawn shorter)", b - a, SIZE)
        first = (y_from + y_to) / 2 - (len(lines) - 1) * LINE_H / 2 + 5
        svg.text((a + b) / 2, first, lines, anchor="middle", colour=COLOURS["muted"], italic=True)

    for x, a, b, y0, y1, kind in _bars(rows, plans, scale):
        if kind == "stuck":
            svg.line(x, y0, x, y1, colour=COLOURS["blocked"], width=3, dash="6 4")
        else:
            # A folded run of echoes lasts: a bar on the client's lane down to its last echo.
            svg.add(f'<rect x="{x - 3:.1f}" y="{y0:.1f}" width="6" height="{max(y1 - y0, 0):.1f}" '
                    f'fill="{COLOURS["echo"]}" opacity="0.45"/>')
    for plan, y in zip(plans, scale.row_y):
        plan.draw(svg, y)
        baselines = iter(plan.baselines(y))
        anchor = {"above": "middle", "right": "start", "left": "end"}[plan.mode]
        for label in plan.labels:
            ys = [next(baselines) for _ in label.lines]
            svg.text(plan.x, ys[0], label.lines, anchor=anchor, colour=label.colour, weight=label.weight,
                     italic=label.italic, line_h=LINE_H)

    y = verdict_top
    svg.add(f'<line x1="16" y1="{y - 26:.1f}" x2="{width - 16:.0f}" y2="{y - 26:.1f}" stroke="#bdbdbd"/>')
    for lines, colour, weight in verdict_lines:
        svg.text(16, y, lines, size=VERDICT_SIZE, colour=colour, weight=weight)
        y += len(lines) * VERDICT_SIZE * LINE_EM

    for lane in lanes:   # last: their gaps are where the labels above ended up
        svg.lifeline(lane_x[lane], top + HEADER_H, scale.bottom + 20,
                     dash="3 5" if direct and lane == "toxiproxy" else None)

    body = "\n".join(svg.under + svg.parts)
    title = escape(f"Sequence diagram: {scenario.get('name', '?')}")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family={quoteattr(FONT)}>\n'
            f'<title>{title}</title>\n{_arrow_defs()}\n'
            f'<rect class="bg" x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>\n'
            f"{body}\n</svg>\n")


def _draw_lane_heads(svg: _Svg, lanes: list[str], lane_x: dict[str, float], direct: bool, *, top: float) -> None:
    box_w = LANE_W - 30
    for lane in lanes:
        x = lane_x[lane]
        kind = "client" if lane.startswith("client") else lane
        off_path = direct and lane == "toxiproxy"
        svg.add(f'<rect class="bg" x="{x - box_w / 2:.1f}" y="{top:.1f}" width="{box_w}" height="{HEADER_H}" rx="6" '
                f'fill="{LANE_FILL.get(kind, "#eeeeee")}" stroke="#9e9e9e"/>')
        name = wrap(lane, box_w - 12, LANE_SIZE)
        svg.text(x, top + 24 - (len(name) - 1) * LANE_SIZE * LINE_EM / 2, name, anchor="middle", size=LANE_SIZE,
                 weight="bold", colour=COLOURS["muted"] if off_path else COLOURS["text"])
        if off_path:
            svg.text(x, top + HEADER_H + 18, "(not on this path: direct)", anchor="middle",
                     colour=COLOURS["muted"], italic=True)


def _draw_axis(svg: _Svg, scale: _Scale, rows: list[Row], *, top: float, bottom: float) -> None:
    x = AXIS_W - 34
    svg.line(x, top - 10, x, bottom + 10, colour="#616161", width=1.2)
    svg.text(x, top - 18, "seconds", anchor="middle", colour=COLOURS["muted"])
    duration = rows[-1].t if rows else 0.0
    step = _nice_step(max(duration, 0.05))
    compressed = [(a, b) for _, a, b, _ in scale.breaks]
    last_label = -1e9
    k = 0
    while k * step <= duration + 1e-9:
        t = round(k * step, 6)
        y = scale.y(t)
        # A tick inside a compressed stretch would claim a time the page does not show there.
        inside_break = any(a - 2 < y < b + 2 for a, b in compressed)
        if not inside_break and y - last_label >= SIZE * LINE_EM + 2:
            svg.line(x - 5, y, x, y, colour="#616161", width=1.2)
            svg.text(x - 9, y + 5, f"{t:g} s", anchor="end", colour="#424242")
            last_label = y
        k += 1
    for a, b in compressed:
        # A break mark on the axis: this stretch is drawn shorter than it lasted.
        mid = (a + b) / 2
        svg.add(f'<path d="M{x - 7:.1f},{mid - 2:.1f} l14,-6 M{x - 7:.1f},{mid + 6:.1f} l14,-6" stroke="#616161" '
                f'stroke-width="1.5" fill="none"/>')


def _last_rows(rows: list[Row]) -> tuple[dict[int, int], dict[int, int]]:
    """For each BLOCKED row, the row of its actor's event before it; for each folded run, its last row.

    A folded run ends at ``until``, somewhere after the rows that start before it; the next row
    counts too, since the bar may reach into its band.
    """
    stuck: dict[int, int] = {}
    last: dict[str, int] = {}
    runs: dict[int, int] = {}
    for j, row in enumerate(rows):
        if row.what.startswith("BLOCKED"):
            stuck[j] = last.get(row.actor, j)
        last[row.actor] = j
        if row.until is not None and row.what in ("echo intact", "echo CORRUPT"):
            end = j
            while end + 1 < len(rows) and rows[end + 1].t <= row.until:
                end += 1
            runs[j] = min(end + 1, len(rows) - 1)
    return stuck, runs


def _obstacles(rows: list[Row], plans: list[_Plan]) -> list[tuple[float, int, int]]:
    """(lane x, first row, last row) of every stuck line and echo bar: no other row's label may cross them."""
    stuck, runs = _last_rows(rows)
    found = [(plans[j].own_x, a, j) for j, a in stuck.items()]
    found += [(plans[j].own_x, j, end) for j, end in runs.items()]
    return found


def _bars(rows: list[Row], plans: list[_Plan], scale: _Scale) -> list[tuple[float, int, int, float, float, str]]:
    stuck, runs = _last_rows(rows)
    bars = []
    for j, a in stuck.items():
        start = rows[a].until if rows[a].until is not None else rows[a].t
        y0 = max(scale.row_y[a] + plans[a].mark_below, scale.y(start))
        bars.append((plans[j].own_x, a, j, y0 + 2, scale.row_y[j] - plans[j].mark_above - 2, "stuck"))
    for j, end in runs.items():
        bars.append((plans[j].own_x, j, end, scale.row_y[j], scale.y(rows[j].until or rows[j].t), "bar"))
    return bars


def _plan_row(row: Row, lane_x: dict[str, float], lanes: list[str], fault: tuple[Any, float | None],
              direct: bool, width: float) -> _Plan:
    fault_at, in_place = fault
    x_actor = lane_x.get(row.actor, lane_x["server"] if row.actor.startswith("server") else lane_x["lab"])
    x_server, x_lab = lane_x["server"], lane_x["lab"]
    time_note = f"+{row.t:.3f} s"
    what = row.what
    right_edge = width - 16
    if row.actor == "lab" and (what.startswith("fault:") or what.startswith("ABORTED")):
        left = lane_x[lanes[0]] - LANE_W / 2 + 15
        right = x_lab + LANE_W / 2 - 15
        label = what.upper() if what.startswith("fault:") else what
        extra = _fact_text(row.facts)

        def band(svg: _Svg, y: float) -> None:
            svg.add(f'<rect x="{left:.1f}" y="{y - 4:.1f}" width="{right - left:.1f}" height="8" '
                    f'fill="{COLOURS["fault"]}" opacity="0.85"/>')
        text = f"{label}" + (f" ({extra})" if extra else "") + f"  {time_note}"
        return _Plan(row, x_actor, "above", left, right, [_Label(text, COLOURS["fault"], "bold")], band,
                     near="wide", mark_below=6)
    if what in ("echo intact", "echo CORRUPT"):
        kind = "echo" if what == "echo intact" else "corrupt"

        def echo(svg: _Svg, y: float) -> None:
            svg.line(x_actor + 6, y, x_server - 6, y, colour=COLOURS[kind], width=2 if kind == "echo" else 3,
                     start=f"head-{kind}", end=f"head-{kind}")
            if not direct and "toxiproxy" in lane_x:
                svg.add(f'<circle cx="{lane_x["toxiproxy"]:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[kind]}"/>')
        seq = row.facts.get("seq")
        label = f"echo #{seq}" if row.count == 1 else f"echo #{seq}–#{row.last_seq} (×{row.count})"
        label += " intact" if kind == "echo" else " CORRUPT"
        if row.facts.get("bytes") is not None:
            label += f", {row.facts['bytes']} B" + (" each" if row.count > 1 else "")
        if row.until is not None and round(row.until, 3) != round(row.t, 3):
            label += f", +{row.t:.3f} s → +{row.until:.3f} s"
        else:
            label += f"  {time_note}"
        return _Plan(row, x_actor, "above", x_actor + 8, x_server - 8, [_Label(label, COLOURS[kind])], echo)
    if row.actor.startswith("client") and what in ("PING", "PING answered"):
        answered = what == "PING answered"
        kind = "send" if answered else "muted"

        def ping(svg: _Svg, y: float) -> None:
            svg.line(x_actor + 6, y, x_server - 6, y, colour=COLOURS[kind], width=1.5, dash="2 3",
                     end=f"head-{kind}", start=f"head-{kind}" if answered else None)
        label = "PING" + (f" ×{row.count}" if row.count > 1 else "")
        if row.count > 1 and row.until is not None:
            label += f" every {_seconds((row.until - row.t) / (row.count - 1))} s"
        label += ", each answered by PONG" if answered and row.count > 1 else ", answered by PONG" if answered \
            else ", none answered" if row.count > 1 else ", not answered"
        if row.count > 1 and row.until is not None:
            label += f", +{row.t:.3f} s → +{row.until:.3f} s"
        else:
            label += f"  {time_note}"
        if row.facts.get("inferred"):
            label += f" (times inferred from {row.facts['inferred']})"
        return _Plan(row, x_actor, "above", x_actor + 8, x_server - 8, [_Label(label, COLOURS[kind])], ping)
    if row.actor.startswith("client") and what in ("connected", "connecting", "sending after the fault"):
        kind = "send" if what.startswith("sending") else "muted"

        def send(svg: _Svg, y: float) -> None:
            svg.line(x_actor + 6, y, x_server - 6, y, colour=COLOURS[kind], width=1.5, dash="5 3",
                     end=f"head-{kind}")
        return _Plan(row, x_actor, "above", x_actor + 8, x_server - 8,
                     [_Label(f"{what}  {time_note}", COLOURS[kind])], send)
    if row.facts.get("capture") and row.facts.get("to") in lane_x:
        x_to = lane_x[row.facts["to"]]
        kind = "fault" if row.what == "RST" else "muted"
        step = 6 if x_to > x_actor else -6

        def packet(svg: _Svg, y: float) -> None:
            svg.line(x_actor + step, y, x_to - step, y, colour=COLOURS[kind], width=2 if kind == "fault" else 1.5,
                     end=f"head-{kind}")
        label = f"{row.label()} from {row.actor} to {row.facts['to']} (in {row.facts['capture']})  {time_note}"
        lo, hi = sorted((x_actor, x_to))
        return _Plan(row, x_actor, "above", lo + 8, hi - 8, [_Label(label, COLOURS[kind])], packet,
                     near="lo" if x_actor < x_to else "hi")
    if what.startswith("ERROR"):
        c = COLOURS["error"]

        def cross(svg: _Svg, y: float) -> None:
            svg.add(f'<path d="M{x_actor - 7:.1f},{y - 7:.1f} l14,14 M{x_actor - 7:.1f},{y + 7:.1f} l14,-14" '
                    f'stroke="{c}" stroke-width="3.5"/>')
        since = f", detected {row.t - in_place:.3f} s after the fault was in place" if in_place is not None else ""
        errno = f" [{row.facts['errno']}]" if row.facts.get("errno") else ""
        labels = [_Label(f"{what}{errno}  {time_note}{since}", c, "bold")]
        if row.facts.get("message"):
            labels.append(_Label(str(row.facts["message"]), c))
        return _Plan(row, x_actor, "right", x_actor + 16, right_edge, labels, cross)
    if what.startswith("BLOCKED"):
        c = COLOURS["blocked"]

        def square(svg: _Svg, y: float) -> None:
            svg.add(f'<rect x="{x_actor - 8:.1f}" y="{y - 8:.1f}" width="16" height="16" fill="{c}"/>')
        label = f"{what} ({row.facts.get('watchdog_s', '?')} s)  {time_note}: it was still inside a call"
        return _Plan(row, x_actor, "right", x_actor + 16, right_edge, [_Label(label, c, "bold")], square)
    if what == "completed":
        c = COLOURS["ok"]

        def tick(svg: _Svg, y: float) -> None:
            svg.add(f'<path d="M{x_actor - 7:.1f},{y:.1f} l5,6 l10,-12" stroke="{c}" stroke-width="3.5" fill="none"/>')
        label = f"completed ({row.facts.get('exchanges', '?')} exchanges)  {time_note}"
        return _Plan(row, x_actor, "right", x_actor + 16, right_edge, [_Label(label, c, "bold")], tick)
    # Anything else: a dot on the actor's lane, labelled; the lab's own notes point at the server.
    colour = COLOURS["fault"] if what.startswith("fault in place") else COLOURS["muted"]
    extra = _fact_text(row.shown_facts())
    if what.startswith("fault in place") and row.t == in_place and isinstance(fault_at, (int, float)) \
            and in_place - fault_at >= 0.0005:
        extra = f"{in_place - fault_at:.3f} s after it was asked for: times since the fault count from here"
    label = f"{row.label()}" + (f" ({extra})" if extra else "") + f"  {time_note}"

    def dot(svg: _Svg, y: float) -> None:
        svg.add(f'<circle cx="{x_actor:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
    if x_actor >= x_lab:
        return _Plan(row, x_actor, "left", lane_x[lanes[0]] - LANE_W / 2 + 10, x_actor - 12,
                     [_Label(label, colour)], dot, near="hi")
    return _Plan(row, x_actor, "right", x_actor + 12, right_edge, [_Label(label, colour)], dot)


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
        lines.append((" ".join(text.split()), COLOURS["ok"] if ok else COLOURS["error"], "bold"))
    fidelity = report.get("fidelity", [])
    proven = report.get("fidelity_ok")
    lines.append((f"fault really happened: {'yes' if proven else 'NOT PROVEN'} "
                  f"({sum(1 for c in fidelity if c.get('ok'))}/{len(fidelity)} checks)",
                  COLOURS["ok"] if proven else COLOURS["error"], "normal"))
    if report.get("aborted"):
        lines.append((" ".join(f"ABORTED: {report['aborted']}".split()), COLOURS["error"], "bold"))
    lines.append((f"verdict: {'PASS' if report.get('ok') else 'FAIL'}",
                  COLOURS["ok"] if report.get("ok") else COLOURS["error"], "bold"))
    return lines
