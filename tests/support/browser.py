"""Headless Chromium for the live view's tests: Debian's chromium driven by Playwright, never a download.

Playwright's own browser download cannot reach the internet here, so the browser is the
distribution's (``./labw test`` installs the ``chromium`` package when it is missing, as root).
The flags keep Chromium from reaching for Google's services at start, which this closed network
refuses. A screenshot is saved next to the test's other artefacts when one is asked for.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    found = shutil.which("chromium") or (CHROMIUM if shutil.which(CHROMIUM) else None)
    if found is None:
        raise RuntimeError("Debian's chromium is not installed: `./labw test` installs it as root "
                           "(apt-get install chromium); or install it yourself")
    return found


@contextlib.contextmanager
def page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), args=FLAGS,
                                                           headless=True, viewport={"width": width, "height": height})
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
