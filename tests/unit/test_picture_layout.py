"""The timeline SVG is legible on a projector: no label overlaps, crosses a line, is cut or is small.

Measured on real runs (tests/unit/data/*_report.json, saved by `lab run --all`), with the
same width estimate the layout uses (lab.reports.textbox), read back from the SVG itself.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lab.reports.picture import render_svg
from lab.reports.textbox import Box, text_box, wrap

DATA = Path(__file__).parent / "data"
NS = "{http://www.w3.org/2000/svg}"
REAL = ["black_hole", "host_vanishes", "frozen_process", "reset", "partition_to_server", "packet_loss", "refused"]


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def drawn(root: ET.Element) -> list[ET.Element]:
    """Every element outside <defs> (a marker's own path is not on the page)."""
    defs = {id(e) for d in root.iter(f"{NS}defs") for e in d.iter()}
    return [e for e in root.iter() if id(e) not in defs]


def text_boxes(root: ET.Element) -> list[tuple[str, Box, float]]:
    found = []
    for text in root.iter(f"{NS}text"):
        size = float(text.get("font-size", "0"))
        for span in text.iter(f"{NS}tspan"):
            found.append((span.text or "", text_box(float(span.get("x", "nan")), float(span.get("y", "nan")),
                                                    span.text or "", size, text.get("text-anchor", "start")), size))
    return found


def path_box(d: str, pad: float) -> Box:
    xs, ys, x, y = [], [], 0.0, 0.0
    for command, a, b in re.findall(r"([MLl])\s*(-?[\d.]+)[ ,]+(-?[\d.]+)", d):
        x, y = (x + float(a), y + float(b)) if command == "l" else (float(a), float(b))
        xs.append(x)
        ys.append(y)
    assert re.fullmatch(r"([MLl]\s*-?[\d.]+[ ,]+-?[\d.]+\s*)+z?", d.strip()), f"a path the test cannot read: {d}"
    return Box(min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def mark_boxes(root: ET.Element) -> list[tuple[str, Box]]:
    """Every line, bar, dot and cross on the page, as a box (a line's arrow head reaches 5 px out)."""
    marks = []
    for e in drawn(root):
        tag = e.tag.removeprefix(NS)
        if e.get("class") == "bg":       # the page, the lane heads, a compressed stretch's shading
            continue
        if tag == "line":
            x1, y1, x2, y2 = (float(e.get(k, "0")) for k in ("x1", "y1", "x2", "y2"))
            pad = 5.0 if e.get("marker-end") or e.get("marker-start") else float(e.get("stroke-width", "1")) / 2
            marks.append((f"line {x1},{y1}→{x2},{y2}", Box(min(x1, x2) - pad, min(y1, y2) - pad,
                                                         max(x1, x2) + pad, max(y1, y2) + pad)))
        elif tag == "rect":
            x, y, w, h = (float(e.get(k, "0")) for k in ("x", "y", "width", "height"))
            marks.append((f"rect at {x},{y}", Box(x, y, x + w, y + h)))
        elif tag == "circle":
            cx, cy, r = (float(e.get(k, "0")) for k in ("cx", "cy", "r"))
            marks.append((f"circle at {cx},{cy}", Box(cx - r, cy - r, cx + r, cy + r)))
        elif tag == "path":
            marks.append((f"path {e.get('d')}", path_box(e.get("d", ""), float(e.get("stroke-width", "1")) / 2)))
    return marks


def labels_of(report: dict[str, Any]) -> list[str]:
    """Each label's words, rejoined from the lines it was wrapped onto."""
    return [" ".join("".join(t.itertext()).split()) for t in ET.fromstring(render_svg(report).encode()).iter(f"{NS}text")]


@pytest.fixture(scope="module", params=REAL)
def picture(request: pytest.FixtureRequest) -> ET.Element:
    return ET.fromstring(render_svg(sample(request.param)).encode())


def test_no_two_labels_overlap(picture: ET.Element) -> None:
    boxes = text_boxes(picture)
    assert len(boxes) > 20
    clashes = [(a, b) for i, (a, box_a, _) in enumerate(boxes) for b, box_b, _ in boxes[i + 1:] if box_a.overlaps(box_b)]
    assert clashes == []


def test_no_line_or_mark_crosses_a_label(picture: ET.Element) -> None:
    marks = mark_boxes(picture)
    assert any(name.startswith("line") for name, _ in marks) and any(name.startswith("rect") for name, _ in marks)
    crossed = [(text, name) for text, box, _ in text_boxes(picture) for name, mark in marks if box.overlaps(mark)]
    assert crossed == []


def test_no_label_is_cut_or_outside_the_page(picture: ET.Element) -> None:
    _, _, width, height = (float(v) for v in picture.get("viewBox", "").split())
    boxes = text_boxes(picture)
    assert [text for text, _, _ in boxes if text.rstrip().endswith("…") or not text.strip()] == []
    assert [text for text, box, _ in boxes if not box.inside(width, height)] == []


def test_every_font_is_at_least_14_px(picture: ET.Element) -> None:
    sizes = {float(e.get("font-size", "0")) for e in drawn(picture) if e.tag == f"{NS}text"}
    assert min(sizes) == 14 and all(size >= 14 for size in sizes)
    assert not [e for e in drawn(picture) if e.get("font-size") and e.tag != f"{NS}text"]   # none set elsewhere


def test_a_long_detail_is_wrapped_whole_not_cut() -> None:
    labels = labels_of(sample("black_hole"))
    # Once drawn as "no byte from toxiproxy:7000 for 3.00s despite PINGs every 1s (dead_…": all of it, on lines.
    assert "no byte from toxiproxy:7000 for 3.00s despite PINGs every 1s (dead_after=3s)" in labels


def test_a_fold_of_echoes_at_one_millisecond_names_its_time_once() -> None:
    labels = labels_of(sample("black_hole"))
    # robust's two echoes: +0.1760 and +0.1765 s, one time at this precision, so not "until +0.176 s  +0.176 s".
    assert "echo #1–#2 (×2) intact, 100 B each +0.176 s" in labels
    assert "echo #1–#2 (×2) intact, 100 B each, +0.174 s → +0.175 s" in labels   # naive's: two times


def test_wrap_keeps_every_character_and_respects_the_width() -> None:
    lines = wrap("no byte from toxiproxy:7000 for 3.00s despite PINGs every 1s", 14 * 0.62 * 12, 14)
    assert lines == ["no byte from", "toxiproxy:70", "00 for 3.00s", "despite", "PINGs every", "1s"]
