"""Where a run's evidence is kept: one folder per run, ``results/<UTC timestamp>-<scenario>/``.

::

    from lab.reports.results import default_dir, save
    folder = save(report, default_dir(repo, "refused"))     # report: the runner's JSON, with "pcaps"

writes ``report.json`` (the report without the raw captures), ``timeline.svg``
(:mod:`lab.reports.picture`), ``report.html`` and ``report.md`` (:mod:`lab.reports.document`),
and, when the scenario captured, ``server.pcap`` / ``client.pcap`` (open them in
Wireshark) and ``capture.txt`` (:func:`lab.evidence.render` of each).
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from lab.inlab import runreport
from lab.inlab.runreport import RunReport
from pathlib import Path
from typing import Any

__all__ = ["default_dir", "save", "capture_text", "split_pcaps"]

_PORT_RE = re.compile(r"port (\d+)")


def default_dir(repo: Path, label: str, *, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path(repo) / "results" / f"{stamp}-{label}"


def split_pcaps(report: RunReport) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report without its base64 captures, and the captures as bytes."""
    clean = {k: v for k, v in report.items() if k != "pcaps"}
    pcaps = {where: base64.b64decode(data) for where, data in (report.get("pcaps") or {}).items()}
    return clean, pcaps


def _capture_port(report: RunReport, where: str) -> int | None:
    # The runner notes the filter when it starts a capture ("capturing at the server", filter="tcp and port 7000").
    for event in report.get("timeline", []):
        if event.get("what") == f"capturing at the {where}":
            found = _PORT_RE.search(str(event.get("filter", "")))
            if found:
                return int(found.group(1))
    return None


def capture_text(report: RunReport, pcaps: dict[str, bytes]) -> str | None:
    """lab.evidence.render of each pcap; without pcaps, the summaries the runner rendered in the lab."""
    from lab.evidence import CaptureError, render, summarize

    parts = []
    for where, data in sorted(pcaps.items()):
        try:
            text = render(summarize(data, server_port=_capture_port(report, where)))
        except CaptureError as exc:
            text = f"unreadable capture: {exc}\n"
        parts.append(f"== {where}.pcap ({len(data)} bytes)\n{text}")
    if not parts:
        for where, capture in sorted((report.get("facts", {}).get("captures") or {}).items()):
            parts.append(f"== {where} (summarised in the lab)\n{capture.get('text', '')}")
    return "\n".join(parts) if parts else None


def save(report: RunReport, folder: Path) -> Path:
    """Write every file of one run into ``folder`` (created); returns it."""
    from lab.reports.picture import render_svg
    from lab.reports.document import render_html, render_markdown

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean, pcaps = split_pcaps(report)
    (folder / "report.json").write_text(runreport.dumps(clean, indent=2) + "\n", encoding="utf-8")
    svg = render_svg(clean)
    (folder / "timeline.svg").write_text(svg, encoding="utf-8")
    for where, data in pcaps.items():
        (folder / f"{where}.pcap").write_bytes(data)
    text = capture_text(clean, pcaps)
    if text:
        (folder / "capture.txt").write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(render_html(clean, svg=svg, capture_text=text), encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(clean, capture_text=text), encoding="utf-8")
    return folder
