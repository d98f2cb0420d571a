"""The fault agent's log: one JSON object per line on stdout, stamped with the monotonic clock.

Compose keeps the container's stdout, so ``docker compose logs server-agent``
shows what the agent did and why (isolation, each request, auto-stopped
captures, internal errors) in a form a test or a person can read.
"""

from __future__ import annotations

import json
import time


def emit(event: str, **facts: object) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic(), 3), **facts}), flush=True)
