"""The live view's page in a real (headless) Chromium: it draws each event as it arrives, the fault band,
the errors, the narration's "next" button and, at the end, the verdicts, proofs and links."""

from __future__ import annotations

import time
from pathlib import Path

from lab.host.web.hub import EventHub
from lab.host.web.server import LiveView
from tests.support import browser


def test_the_page_draws_events_as_they_come_then_the_end(tmp_path: Path) -> None:
    (tmp_path / "client.pcap").write_bytes(b"pcap")
    hub = EventHub()
    with LiveView(hub, results=tmp_path) as view, browser.page() as page:
        hub.publish("start", {"scenario": "black-hole", "title": "Black hole in the path"})
        hub.publish("step", {"title": "1. What the lab is about to do", "text": "hold the replies", "pause": True})
        page.goto(view.url)
        page.wait_for_selector("#steps li", timeout=5000)
        assert page.is_visible("#next")
        page.click("#next")
        assert hub.wait_next(5.0)                     # the button reached the narration
        hub.publish("event", {"t": 0.17, "actor": "client[robust]", "what": "connected"})
        hub.publish("event", {"t": 0.21, "actor": "lab", "what": "fault in place: timeout"})
        page.wait_for_selector('[data-kind="faultmark"]', timeout=5000)
        assert page.inner_text("#end") == "" or not page.is_visible("#end")   # not at the end yet
        hub.publish("event", {"t": 3.22, "actor": "client[robust]", "what": "ERROR PeerUnresponsive",
                              "message": "no byte for 3.00s"})
        hub.publish("event", {"t": 8.21, "actor": "client[naive]", "what": "BLOCKED at the watchdog"})
        page.wait_for_selector('[data-kind="blocked"]', timeout=5000)
        hub.finish({"ok": True, "verdicts": {"robust": {"ok": True, "summary": "PeerUnresponsive (as expected)"}},
                    "fidelity": [{"name": "the proxy held the replies", "ok": True}], "files": ["client.pcap"]})
        page.wait_for_selector("#end:not([hidden])", timeout=5000)
        seen = page.evaluate("window.labSeen.map(s => s.kind)")
        assert seen == ["start", "step", "event", "faultmark", "error", "blocked", "end"]
        rows = page.eval_on_selector_all("#lanes .row:not(.head)", "rs => rs.map(r => r.dataset.kind)")
        assert rows == ["event", "faultmark", "error", "blocked"]
        banded = page.eval_on_selector_all("#lanes .row.fault", "rs => rs.length")
        assert banded == 3                            # the fault's row and the two after it
        assert "3.01 s after the fault" in page.inner_text("#lanes")
        assert page.get_attribute("#files a", "href") == "/files/client.pcap"
        assert "PASS" in page.inner_text("#verdicts")
        page.click("#projector")
        size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 28
        page.screenshot(path=str(tmp_path / "live.png"))
        assert (tmp_path / "live.png").stat().st_size > 10_000
