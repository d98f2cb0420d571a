"""A message goes client → toxiproxy → server and back intact; a latency toxic proves the path."""

from __future__ import annotations

from lab.host import smoke
from lab.host.topology import Lab


def test_echo_through_toxiproxy_and_latency_proves_the_path(lab: Lab) -> None:
    report = smoke.run(lab, log=lambda _m: None, count=5, size=1000)
    echo, latency = report["echo"], report["latency"]
    assert echo["exit"] == 0
    assert (echo["sent"], echo["received"]) == (5, 5)
    assert echo["intact"] is True
    # Without a toxic the path is fast (containers on one host); with it every round trip
    # is at least the injected delay, which only happens if the bytes cross Toxiproxy.
    assert max(echo["rtt_s"]) < smoke.LATENCY_MS / 1000
    assert latency["exit"] == 0 and len(latency["rtt_s"]) == 3
    assert min(latency["rtt_s"]) >= smoke.LATENCY_MS / 1000
    assert max(latency["rtt_s"]) < smoke.LATENCY_MS / 1000 * 1.5 + 0.1
    assert report["ok"] is True
