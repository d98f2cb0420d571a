"""lab.reports.document and lab.reports.results: the HTML and Markdown reports of a saved run, and the evidence folder."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from lab.evidence import summarize
from lab.reports.picture import render_svg
from lab.reports.document import render_html, render_markdown
from lab.reports.results import capture_text, default_dir, save, split_pcaps

DATA = Path(__file__).parent / "data"
EVIL = "<script>alert('x')</script> | `tick` & *star*"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def with_evil_message(report: dict[str, Any]) -> dict[str, Any]:
    report = copy.deepcopy(report)
    event = next(e for e in report["timeline"] if e["what"].startswith("ERROR"))
    event["message"] = EVIL
    report["verdicts"]["robust"]["checks"][0]["detail"] = EVIL
    return report


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_html_bundles_explanation_timeline_svg_checks_and_packets() -> None:
    report = sample("refused")
    clean, pcaps = split_pcaps(report)
    text = capture_text(clean, pcaps)
    page = render_html(clean, svg=render_svg(clean), capture_text=text)
    assert page.startswith("<!DOCTYPE html>")
    assert "Connection refused" in page and "Creating a Socket" in page
    assert "On the wire." in page and "How the lab does it." in page
    assert "robust</b>: raises ConnectRefused within 0.5 s of the fault" in page
    assert page.count("<svg") == 1 and "<?xml" not in page
    assert "every SYN was answered with an RST" in page            # fidelity
    assert "ERROR ConnectionRefusedError" in page                     # timeline table
    assert "connection 1:" in page and "1 RST" in page                # packet summary
    assert "Remember:" in page


def test_html_escapes_script_tags_in_messages() -> None:
    report = with_evil_message(sample("frozen_process"))
    page = render_html(report, svg=render_svg(report), capture_text="<b>not bold</b>")
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "b" in parser.tags      # <b> from the page itself only
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page


def test_the_inline_svg_is_still_valid_xml() -> None:
    report = with_evil_message(sample("frozen_process"))
    page = render_html(report, svg=render_svg(report))
    svg = page[page.index("<svg"): page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg.encode())


def test_markdown_escapes_html_and_table_breakers() -> None:
    report = with_evil_message(sample("frozen_process"))
    md = render_markdown(report, capture_text="```\nfence inside\n```")
    assert "<script" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "ERROR PeerUnresponsive" in line)
    assert row.count(" | ") == 4 and "\\|" in row                    # five cells: a '|' in a message is not a sixth
    assert "````text\n```\nfence inside\n```\n````" in md           # the capture's fence cannot close early
    assert "![sequence diagram](timeline.svg)" in md
    assert "# Frozen process (frozen-process): PASS" in md


def test_save_writes_every_file_of_a_run(tmp_path: Path) -> None:
    folder = save(sample("refused"), tmp_path / "run")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["capture.txt", "report.html", "report.json", "report.md", "server.pcap", "timeline.svg"]
    saved = json.loads((folder / "report.json").read_text())
    assert "pcaps" not in saved and saved["scenario"]["name"] == "refused"
    conns = summarize((folder / "server.pcap").read_bytes(), server_port=7000).connections_to(7000)
    assert conns and all(c.client_to_server.syn.count == 1 and c.server_to_client.rst.count == 1 for c in conns)
    assert "refused" in (folder / "capture.txt").read_text()
    ET.fromstring((folder / "timeline.svg").read_bytes())


def test_without_pcaps_the_capture_text_is_the_labs_own_summary(tmp_path: Path) -> None:
    report = sample("frozen_process")
    folder = save(report, tmp_path)
    assert not list(folder.glob("*.pcap"))
    assert (folder / "capture.txt").read_text().startswith("== server (summarised in the lab)")


def test_default_dir_is_a_utc_timestamp_and_the_scenario(tmp_path: Path) -> None:
    import datetime as dt

    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert default_dir(tmp_path, "refused", now=when) == tmp_path / "results" / "20250102T030405Z-refused"
