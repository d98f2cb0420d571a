"""The agent that lives beside a lab container, inside its network namespace.

Compose starts one agent per lab host (``server-agent``, ``client-agent``)
with ``network_mode: service:<host>``: it sees that host's interfaces and
routes, and holds only the capabilities its job needs (NET_ADMIN, plus KILL
beside the server). It runs as root because iptables and ``ip route`` need
uid 0 together with the capability; the host it serves runs as a plain user.

At start it removes the namespace's default routes, so the host can reach
the other lab containers on its own subnet and nothing else (``internal``
networks on older engines keep a default route). Then it waits, reaping
orphans, until it is stopped; fault commands run in it through
``docker compose exec``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from lab.health import default_routes
from lab.supervisor import Supervisor


def _emit(event: str, **facts: object) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic(), 3), **facts}), flush=True)


def isolate() -> list[str]:
    """Delete every default route in this namespace; returns what was removed."""
    removed = []
    for family in ("-4", "-6"):
        while True:
            res = subprocess.run(["ip", family, "route", "del", "default"], capture_output=True, text=True,
                                 timeout=10)
            if res.returncode != 0:
                break
            removed.append(f"ip {family} default")
    left = default_routes()
    if left:
        raise SystemExit(f"agent: could not remove default routes {left}; it needs CAP_NET_ADMIN")
    return removed


def main(argv: list[str] | None = None) -> int:
    removed = isolate()
    _emit("isolated", removed=removed)
    return Supervisor([], restart_delay=0).run()


if __name__ == "__main__":
    sys.exit(main())
