"""How much room a line of SVG text takes, how a label wraps, and where along a row it may go.

The timeline SVG (:mod:`lab.reports.picture`) lays out its labels with these functions, and
the tests measure the finished SVG with the very same ones, so "no two labels overlap" is
checked against the estimate the layout used::

    box = text_box(x=100, y=40, text="ERROR PeerReset", size=14, anchor="start")
    lines = wrap("no byte from server:7000 for 3.00s", width=200, size=14)
    spans = free_spans(0, 800, blocked=[300.0], margin=8)     # [(0, 292), (308, 800)]

The picture uses a monospace font: DejaVu Sans Mono advances every glyph by 0.602 em, so
:data:`CHAR_EM` (0.62) is a slight overestimate there, and still a fair one for the fallbacks.
Nothing is ever cut: a word longer than a line is split across lines, never replaced by "…".
"""

from __future__ import annotations

import dataclasses

__all__ = ["CHAR_EM", "LINE_EM", "Box", "text_width", "text_box", "wrap", "free_spans"]

CHAR_EM = 0.62      # advance per character, in em (DejaVu Sans Mono: 0.602)
ASCENT_EM = 1.0     # above the baseline: capitals, accents and the halo, generously
DESCENT_EM = 0.3    # below the baseline: descenders
LINE_EM = 1.4       # baseline to baseline of a wrapped label


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in SVG user units."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: "Box") -> bool:
        """True when the two share some area (touching edges do not count)."""
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, width: float, height: float) -> bool:
        return self.x0 >= 0 and self.y0 >= 0 and self.x1 <= width and self.y1 <= height


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_EM


def text_box(x: float, y: float, text: str, size: float, anchor: str = "start") -> Box:
    """The box one line of text covers: ``y`` is its baseline, ``anchor`` SVG's text-anchor."""
    w = text_width(text, size)
    left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
    return Box(left, y - ASCENT_EM * size, left + w, y + DESCENT_EM * size)


def wrap(text: str, width: float, size: float) -> list[str]:
    """``text`` in lines no wider than ``width``, broken at spaces; an overlong word is split."""
    per_line = max(int(width // (size * CHAR_EM)), 1)
    if len(text) <= per_line and "\n" not in text:
        return [text]            # as given: a label's double space before its time stays
    lines: list[str] = []
    current = ""
    for word in " ".join(str(text).split()).split(" "):
        while len(word) > per_line:          # a path or a long token: split it, keep every character
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:per_line])
            word = word[per_line:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= per_line:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current or not lines:
        lines.append(current)
    return lines


def free_spans(lo: float, hi: float, blocked: list[float], margin: float) -> list[tuple[float, float]]:
    """The stretches of [lo, hi] that keep ``margin`` away from every x in ``blocked``, left to right."""
    spans: list[tuple[float, float]] = []
    start = lo
    for x in sorted(b for b in blocked if lo - margin < b < hi + margin):
        if x - margin > start:
            spans.append((start, x - margin))
        start = max(start, x + margin)
    if hi > start:
        spans.append((start, hi))
    return spans
