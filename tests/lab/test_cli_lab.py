"""The `lab` command against the real lab (the session's project): run, evidence on disk, demo, bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from lab.host import cli

from lab.inlab import scenario
from lab.evidence import summarize
from lab.host.topology import Lab


def invoke(lab: Lab, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.cli, ["--project", lab.project, *args], catch_exceptions=False)


def test_run_clean_close_json(lab: Lab, tmp_path: Path) -> None:
    result = invoke(lab, "run", "clean-close", "--json", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scenario"]["name"] == "clean-close"
    assert report["ok"] is True and report["fidelity_ok"] is True and report["aborted"] is None
    assert set(report["verdicts"]) == {"robust", "naive"}
    assert all(v["ok"] and v["checks"] for v in report["verdicts"].values())
    assert report["timeline"] and {"t", "actor", "what"} <= set(report["timeline"][0])
    assert report["results"] == str(tmp_path) and "pcaps" not in report


def test_run_refused_keeps_the_evidence(lab: Lab, tmp_path: Path) -> None:
    result = invoke(lab, "run", "refused", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name in ("report.json", "timeline.svg", "report.html", "server.pcap", "capture.txt"):
        assert (tmp_path / name).is_file(), name
    ET.fromstring((tmp_path / "timeline.svg").read_bytes())
    assert "Connection refused" in (tmp_path / "report.html").read_text()
    conns = summarize((tmp_path / "server.pcap").read_bytes(), server_port=7000).connections_to(7000)
    assert len(conns) >= 2
    for conn in conns:   # every SYN was answered by an RST, and nothing else came back
        syn, rst = conn.client_to_server.syn, conn.server_to_client.rst
        assert syn.count >= 1 and rst.count >= 1 and syn.first is not None and rst.first is not None
        assert rst.first >= syn.first
        assert conn.server_to_client.syn_ack.count == 0 and conn.outcome == "refused"


def test_demo_clean_close_no_pause(lab: Lab, tmp_path: Path) -> None:
    result = invoke(lab, "demo", "clean-close", "--no-pause", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    remember = " ".join(scenario.get("clean-close").remember.split())
    assert f"Remember: {remember}" in result.stdout
    assert "robust raised PeerClosed" in result.stdout and "(PASS)." in result.stdout


def test_unknown_scenario_exits_2(lab: Lab) -> None:
    result = invoke(lab, "run", "no-such-scenario")
    assert result.exit_code == 2
    assert "known scenarios" in result.stderr
