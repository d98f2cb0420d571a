"""lab.reports.picture: the SVG sequence diagram of a saved run is valid, has its lanes, events and verdicts."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lab.reports.picture import lanes_for, render_svg, rows_for

DATA = Path(__file__).parent / "data"
SVG = "{http://www.w3.org/2000/svg}"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    return [" ".join("".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]   # wrapped lines rejoined


def test_the_svg_parses_and_declares_its_size() -> None:
    root = ET.fromstring(render_svg(sample("frozen_process")).encode())
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width", 0)) > 800 and float(root.get("height", 0)) > 400
    assert root.get("viewBox", "").startswith("0 0 ")


def test_lanes_are_the_judged_clients_then_the_path_then_the_lab() -> None:
    report = sample("frozen_process")
    assert lanes_for(report) == ["client[robust]", "client[naive]", "toxiproxy", "server", "lab"]
    labels = texts(render_svg(report))
    for lane in lanes_for(report):
        assert lane in labels


def test_every_kind_of_event_is_drawn() -> None:
    labels = "\n".join(texts(render_svg(sample("frozen_process"))))
    assert "FAULT: FREEZE (server=threaded)" in labels               # the fault, across the lanes
    assert "ERROR PeerUnresponsive" in labels                           # the robust client's detection
    # Counted from "fault in place: freeze" (+0.148 s), not from the request (+0.142 s): 3.1503 − 0.148.
    assert "detected 3.002 s after the fault was in place" in labels
    assert "BLOCKED at the watchdog (12.0 s)" in labels                 # the naive client never returned
    assert "echo #1–#2 (×2) intact" in labels
    assert "sending after the fault" in labels
    assert "(not on this path: direct)" in labels


def test_a_time_scale_in_seconds_and_compressed_stretches_are_marked() -> None:
    labels = texts(render_svg(sample("frozen_process")))
    assert "0 s" in labels and "seconds" in labels
    assert any(label.startswith("8.99 s pass here (drawn shorter)") for label in labels)


def test_verdicts_close_the_picture() -> None:
    labels = texts(render_svg(sample("frozen_process")))
    assert any(label.startswith("robust: PASS — expected error PeerUnresponsive") for label in labels)
    assert any(label.startswith("naive: PASS — expected blocked") for label in labels)
    assert "verdict: PASS" in labels
    assert "fault really happened: yes (3/3 checks)" in labels


def test_folding_keeps_one_row_per_run_of_echoes_and_breaks_runs_at_other_events() -> None:
    timeline = [{"t": 0.1 * i, "actor": f"client[{impl}]", "what": "echo intact", "seq": i}
                for i in range(1, 5) for impl in ("robust", "naive")]
    timeline.append({"t": 1.0, "actor": "lab", "what": "fault: loss"})
    timeline.append({"t": 1.1, "actor": "client[robust]", "what": "echo intact", "seq": 5})
    rows = rows_for(timeline)
    assert [(r.actor, r.count) for r in rows] == [("client[robust]", 4), ("client[naive]", 4), ("lab", 1),
                                                  ("client[robust]", 1)]
    assert rows[0].last_seq == 4 and rows[0].until == 0.4


def test_text_from_the_report_is_escaped() -> None:
    report = copy.deepcopy(sample("frozen_process"))
    error = next(e for e in report["timeline"] if e["what"].startswith("ERROR"))
    error["message"] = "<script>alert('x')</script> & more"
    svg = render_svg(report)
    assert "<script" not in svg
    # A word longer than the room is split across lines, so compare without the spaces.
    assert any("<script>alert('x')</script>&more" in "".join(label.split()) for label in texts(svg))


def test_an_empty_or_aborted_report_still_draws() -> None:
    report = copy.deepcopy(sample("refused"))
    report.update(timeline=[], aborted="the lab did not answer", ok=False)
    labels = texts(render_svg(report))
    assert "ABORTED: the lab did not answer" in labels and "verdict: FAIL" in labels
