"""Heartbeats on the timeline: robust tells each PING and PONG, the runner marks them, the SVG folds them."""

from __future__ import annotations

import copy
import json
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lab.reports.picture import heartbeat_events, render_svg
from lab.sockets import framing
from lab.sockets.errors import PeerUnresponsive
from lab.sockets.robust import RobustConfig, RobustConnection

DATA = Path(__file__).parent / "data"
NS = "{http://www.w3.org/2000/svg}"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def labels(report: dict[str, Any]) -> list[str]:
    return [" ".join("".join(t.itertext()).split()) for t in ET.fromstring(render_svg(report).encode()).iter(f"{NS}text")]


def test_a_real_black_hole_run_shows_robusts_two_unanswered_pings() -> None:
    # From before the runner marked heartbeats: robust counted pings_sent=2, "PINGs every 1s", and
    # its last event before the error was "sending after the fault" at +0.2182 s.
    report = sample("black_hole")
    assert [(e["t"], e["actor"], e["what"], e["seq"]) for e in heartbeat_events(report)] == [
        (1.2182, "client[robust]", "PING", 1), (2.2182, "client[robust]", "PING", 2)]
    assert ("PING ×2 every 1 s, none answered, +1.218 s → +2.218 s (times inferred from robust's count and "
            "interval)") in labels(report)


@pytest.mark.parametrize("name", ["host_vanishes", "frozen_process", "partition_to_server"])
def test_other_real_runs_with_heartbeats_show_them_too(name: str) -> None:
    assert sum(label.startswith("PING ×2 every 1 s, none answered") for label in labels(sample(name))) == 1


def test_marked_heartbeats_are_drawn_as_they_were_and_answered_ones_fold() -> None:
    report = copy.deepcopy(sample("black_hole"))
    robust = "client[robust]"
    marked = []
    for k in range(1, 6):   # five answered heartbeats a second apart, before the fault
        marked += [{"t": 0.18 + k * 0.001, "actor": robust, "what": "PING", "seq": k},
                   {"t": 0.1805 + k * 0.001, "actor": robust, "what": "PONG", "seq": k}]
    report["timeline"] = sorted(report["timeline"] + marked, key=lambda e: e["t"])
    assert heartbeat_events(report) == []          # the runner marked them: nothing inferred
    shown = labels(report)
    assert "PING ×5 every 0 s, each answered by PONG, +0.181 s → +0.185 s" in shown
    assert not any("inferred" in label for label in shown)


def test_a_run_without_a_heartbeat_count_infers_none() -> None:
    report = copy.deepcopy(sample("black_hole"))
    report["verdicts"]["robust"]["outcome"]["measurements"].pop("pings_sent")
    assert heartbeat_events(report) == []
    assert not any(label.startswith("PING") for label in labels(report))


def test_robust_tells_its_observer_of_each_ping_and_pong() -> None:
    ours, theirs = socket.socketpair()
    conn = RobustConnection(ours, RobustConfig(heartbeat_interval=0.05, dead_after=0.17), peer="peer")
    seen: list[tuple[str, int]] = []
    conn.heartbeat_observer = lambda what, nonce: seen.append((what, nonce))
    theirs.sendall(framing.encode_pong(1))          # the answer to the first PING, waiting already
    with pytest.raises(PeerUnresponsive):
        conn.recv_frame()
    conn.close()
    theirs.close()
    assert seen[0] == ("PONG", 1)                   # read at once, before any silence
    assert [what for what, _ in seen].count("PING") >= 2
    assert [nonce for what, nonce in seen if what == "PING"] == list(range(1, len(seen)))
