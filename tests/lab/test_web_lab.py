"""The live classroom view during a real scenario, in headless Chromium: the fault band, robust's error
and naive's watchdog appear on the page in that order while the run is still going, then the verdicts.

A screenshot of the finished page is kept in the run's results folder (``live.png``), and the page's
own record says how long each event took from the lab to the page.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.host.topology import Lab
from tests.support import browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_live_view_draws_a_real_run_as_it_happens(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "black-hole"
    proc = subprocess.Popen([sys.executable, "-m", "lab", "--project", lab.project, "run", "black-hole", "--web",
                             "--results", str(folder)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, env={**os.environ, "NO_COLOR": "1"})
    lines: list[str] = []
    url: list[str] = []
    got_url = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("live view: "):
                url.append(line.split()[2])
                got_url.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert got_url.wait(90), "no live view address printed:\n" + "".join(lines)[-3000:]
        with browser.page() as page:
            page.goto(url[0])
            running_when: dict[str, bool] = {}
            for kind, selector in (("faultmark", '[data-kind="faultmark"]'), ("error", '[data-kind="error"]'),
                                   ("blocked", '[data-kind="blocked"]')):
                page.wait_for_selector(selector, timeout=60_000)
                running_when[kind] = proc.poll() is None
            page.wait_for_selector("#end:not([hidden])", timeout=60_000)
            seen = page.evaluate("window.labSeen")
            page.screenshot(path=str(folder / "live.png"), full_page=True)
        assert proc.wait(60) in (0, 1), "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    order = [s["kind"] for s in seen if s["kind"] in ("faultmark", "error", "blocked", "end")]
    assert order[:3] == ["faultmark", "error", "blocked"] and order[-1] == "end", order
    error = next(s for s in seen if s["kind"] == "error")
    assert error["actor"] == "client[robust]" and error["what"] == "ERROR PeerUnresponsive"
    assert next(s for s in seen if s["kind"] == "blocked")["actor"] == "client[naive]"
    # While the run was going: the command was still running when each of them appeared.
    assert running_when == {"faultmark": True, "error": True, "blocked": True}, running_when
    end = next(s for s in seen if s["kind"] == "end")
    faulted = next(s for s in seen if s["kind"] == "faultmark")
    assert end["shown"] - faulted["shown"] > 3.0      # drawn seconds before the end, not all at once
    lags = [s["shown"] - s["wall"] for s in seen if s.get("wall")]
    assert lags and statistics.median(lags) < 1.0, lags
    (folder / "live-latency.txt").write_text(
        f"events: {len(lags)}; lab to page, seconds: median {statistics.median(lags):.3f}, max {max(lags):.3f}\n")
    assert (folder / "live.png").stat().st_size > 10_000
