"""The smoke check: proof that the lab's wiring is what it claims to be.

Two steps, both run by the client driver inside the client container:

1. echo: messages go client → toxiproxy → server and come back intact;
2. latency: with a Toxiproxy latency toxic on the path, every round trip
   takes at least the injected delay, which proves the client's only way to
   the server really is through Toxiproxy.

``run`` returns a plain dict (the report); ``render`` turns it into the lines
a person reads. The CLI's ``lab run`` prints it; the lab tests assert on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lab.addresses import SERVER_PORTS, TOXIPROXY_HOST
from lab.inlab.toxics import Toxiproxy
from lab.host.engine import EngineError
from lab.host.topology import Lab

PROXY = "threaded"
PROXY_PORT = SERVER_PORTS[PROXY]
LATENCY_MS = 200


def client_events(lab: Lab, *args: str, timeout: float = 60.0) -> tuple[int, list[dict[str, Any]]]:
    """Run the client driver in the client container; its exit code and its JSON events."""
    res = lab.exec("client", ["python3", "-m", "lab.inlab.driver", "--host", TOXIPROXY_HOST, "--port", str(PROXY_PORT),
                              *args], timeout=timeout)
    events = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    if res.returncode not in (0, 1) or not events:
        raise EngineError(f"client driver failed (exit {res.returncode}): {res.stderr.strip()[-1500:]}")
    return res.returncode, events


def round_trips(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each 'sent' to the 'received' with the same seq."""
    sent = {e["seq"]: e["t"] for e in events if e.get("event") == "sent"}
    return [e["t"] - sent[e["seq"]] for e in events if e.get("event") == "received" and e.get("seq") in sent]


def run(lab: Lab, *, log: Callable[[str], None] = print, count: int = 5, size: int = 1000) -> dict[str, Any]:
    api = Toxiproxy(lab.toxiproxy_url())
    try:
        api.reset()
        log(f"step 1: {count} messages of {size} bytes, client → toxiproxy → server and back")
        code, events = client_events(lab, "--impl", "robust", "--count", str(count), "--size", str(size))
        sent = {e["seq"]: e["bytes"] for e in events if e.get("event") == "sent"}
        echoed = [e for e in events if e.get("event") == "received"]
        # The robust client checks each echo byte for byte (a mismatch is an error event);
        # here the sizes must match too and no error may have been reported.
        intact = (not any(e.get("event") == "error" for e in events)
                  and all(sent.get(e["seq"]) == e["bytes"] == size for e in echoed))
        echo = {"exit": code, "sent": len(sent), "received": len(echoed), "intact": intact,
                "rtt_s": round_trips(events)}
        log(f"step 2: add a {LATENCY_MS} ms latency toxic (downstream) and measure the round trips")
        with api.toxic(PROXY, "latency", stream="downstream", latency=LATENCY_MS, jitter=0):
            code2, events2 = client_events(lab, "--impl", "robust", "--count", "3", "--size", "100")
        rtts = round_trips(events2)
        latency = {"exit": code2, "latency_ms": LATENCY_MS, "rtt_s": rtts,
                   "min_rtt_s": min(rtts) if rtts else None}
    finally:
        api.reset()
        api.close()
    ok = (echo["exit"] == 0 and echo["received"] == count and echo["intact"]
          and latency["exit"] == 0 and len(rtts) == 3 and min(rtts) >= LATENCY_MS / 1000)
    return {"ok": ok, "echo": echo, "latency": latency}


def render(report: dict[str, Any]) -> str:
    echo, lat = report["echo"], report["latency"]
    rtt = ", ".join(f"{r * 1000:.1f}" for r in echo["rtt_s"])
    lrtt = ", ".join(f"{r * 1000:.1f}" for r in lat["rtt_s"])
    return "\n".join([
        f"echo:    {echo['received']}/{echo['sent']} messages echoed intact={echo['intact']}  rtt ms: {rtt}",
        f"latency: toxic {lat['latency_ms']} ms → rtt ms: {lrtt}  (each must be ≥ {lat['latency_ms']})",
        f"verdict: {'PASS' if report['ok'] else 'FAIL'}",
    ])
