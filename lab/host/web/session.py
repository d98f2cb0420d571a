"""One command's live view: the hub and the server together, and what a run tells them.

    with LiveSession(folder) as live:          # serves on 127.0.0.1, says where
        live.start(scenario)
        live.step(step.title, step.text, pause=True)
        report = run_scenario(..., on_event=live.event)
        live.end(report)

``end`` sends the verdicts (each said in words: "PeerReset (as expected)"), the fault proofs
and the run's evidence files, as links the page can open.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lab.host.web.hub import EventHub
from lab.host.web.server import LiveView

EVIDENCE = (".pcap", ".html", ".svg", ".json", ".txt", ".md")


def end_summary(report: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    from lab.reports.views import matrix_cell

    expect = report.get("scenario", {}).get("expect", {})
    verdicts = {impl: {"ok": bool(v.get("ok")), "summary": matrix_cell(v, expect.get(impl))}
                for impl, v in report.get("verdicts", {}).items()}
    fidelity = [{"name": c.get("name", ""), "ok": bool(c.get("ok")), "detail": c.get("detail", "")}
                for c in report.get("fidelity", [])]
    files = sorted(p.name for p in folder.iterdir() if p.suffix in EVIDENCE) if folder and folder.is_dir() else []
    return {"ok": bool(report.get("ok")), "verdicts": verdicts, "fidelity": fidelity, "files": files}


class LiveSession:
    def __init__(self, folder: Path | None = None, *, port: int = 0) -> None:
        self.hub = EventHub()
        self.view = LiveView(self.hub, results=folder, port=port)
        self.folder = folder
        self._t0 = time.time()

    @property
    def url(self) -> str:
        return self.view.url

    def start(self, scenario: Any) -> None:
        self.hub.publish("start", {"scenario": getattr(scenario, "name", str(scenario)),
                                   "title": getattr(scenario, "title", "")})

    def step(self, title: str, text: str, *, pause: bool = False) -> None:
        self.hub.publish("step", {"title": title, "text": text, "pause": pause})

    def event(self, event: dict[str, Any]) -> None:
        self.hub.publish("event", dict(event))

    def end(self, report: dict[str, Any]) -> None:
        self.hub.finish(end_summary(report, self.folder))

    def fail(self, message: str) -> None:
        self.hub.finish({"ok": False, "verdicts": {}, "fidelity": [], "files": [], "error": message})

    def __enter__(self) -> "LiveSession":
        self.view.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.hub.finished:
            self.fail("the run ended before its report")
        self.view.close()


__all__ = ["LiveSession", "end_summary"]
