"""Sessions that end badly, run as child pytest processes by test_cleanup.py (not collected on their own).

Each brings the lab up through the same fixtures as the real suite, then fails
or waits to be interrupted, so the parent can check that nothing is left.
"""

from __future__ import annotations

import time

from lab.host.topology import Lab


def test_fails_with_the_lab_up(lab: Lab) -> None:
    assert lab.status(), "the lab should be up inside this probe"
    raise AssertionError("deliberate failure: the parent test checks the clean-up after it")


def test_waits_to_be_interrupted(lab: Lab) -> None:
    assert lab.status()
    print("PROBE-READY", flush=True)
    time.sleep(60)  # the parent sends SIGINT long before this ends
