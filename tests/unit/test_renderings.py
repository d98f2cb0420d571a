"""Every rendering of a run tells its lesson truly, from the two real reports in tests/unit/data.

The five renderings (the runner's plain text, the terminal view, Markdown, HTML and the SVG)
must each: fold a long run of identical events into one row that says how many, which
sequence numbers and over what time; count "since the fault" from the moment the fault was in
place, not from when the lab asked for it; never print a proof with an empty detail; and name
who sent a packet (Toxiproxy's RST is Toxiproxy's, not the server's).
"""

from __future__ import annotations

import base64
import copy
import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lab.evidence import Endpoint, summarize
from lab.inlab import runner
from lab.inlab.timeline import NO_DETAIL, fault_in_place, fold
from lab.reports import narrate, views
from lab.reports.document import render_html, render_markdown
from lab.reports.picture import AXIS_W, LANE_W, lanes_for, packet_events, render_svg
from lab.reports.results import capture_text, connection_rows, roles_for, save, split_pcaps, summaries
from tests.support.pcap_builder import START_NS, Flow, write_pcap

DATA = Path(__file__).parent / "data"
SVG = "{http://www.w3.org/2000/svg}"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}_report.json").read_text())


def svg_texts(svg: str) -> list[str]:
    """Each label's words, whatever lines the layout wrapped it onto."""
    return [" ".join("".join(t.itertext()).split()) for t in ET.fromstring(svg.encode()).iter(f"{SVG}text")]


def terminal(report: dict[str, Any]) -> str:
    console = Console(record=True, width=400, color_system=None)
    views.print_report(console, report)
    return console.export_text()


RENDERINGS = {
    "runner.render": runner.render,
    "views.print_report": terminal,
    "markdown": lambda r: render_markdown(r),
    "html": lambda r: html.unescape(render_html(r)),
    "svg": lambda r: "\n".join(svg_texts(render_svg(r))),
}


# -- long runs of identical events ---------------------------------------------------------------

def streamed(report: dict[str, Any], count: int = 300) -> dict[str, Any]:
    """frozen-process with a long stream before the fault: both clients' echoes, interleaved."""
    report = copy.deepcopy(report)
    timeline = report["timeline"]
    head = [e for e in timeline if e["what"] in ("ready", "capturing at the server", "connected")]
    shift = 0.01 * count + 0.1
    tail = [{**e, "t": round(e["t"] + shift, 4)} for e in timeline if e not in head and e["what"] != "echo intact"]
    echoes = []
    for seq in range(1, count + 1):
        echoes.append({"t": round(0.2 + 0.01 * seq, 4), "actor": "client[robust]", "what": "echo intact",
                       "seq": seq, "bytes": 100})
        echoes.append({"t": round(0.205 + 0.01 * seq, 4), "actor": "client[naive]", "what": "echo intact",
                       "seq": seq, "bytes": 100})
    report["timeline"] = head + echoes + tail
    report["fault_at"] = round(report["fault_at"] + shift, 4)
    return report


def test_fold_makes_one_row_per_client_run_with_its_count_and_range() -> None:
    rows = fold(streamed(sample("frozen_process"))["timeline"])
    echo_rows = [r for r in rows if r.what == "echo intact"]
    assert [(r.actor, r.count, r.first_seq, r.last_seq) for r in echo_rows] == [
        ("client[robust]", 300, 1, 300), ("client[naive]", 300, 1, 300)]
    assert echo_rows[1].label() == "echo intact ×300 (seq 1–300, +0.215 s…+3.205 s)"
    assert echo_rows[1].shown_facts() == {"bytes": 100}


def test_a_fold_never_spans_the_fault_or_another_event_of_the_same_client() -> None:
    timeline = [{"t": 0.1 * i, "actor": "client[naive]", "what": "echo intact", "seq": i} for i in range(1, 4)]
    timeline += [{"t": 0.5, "actor": "client[naive]", "what": "ERROR X"},
                 {"t": 0.6, "actor": "client[naive]", "what": "echo intact", "seq": 4},
                 {"t": 0.7, "actor": "client[robust]", "what": "reconnecting", "attempt": 1},
                 {"t": 0.8, "actor": "client[naive]", "what": "echo intact", "seq": 5},
                 {"t": 0.9, "actor": "lab", "what": "fault: crash"},
                 {"t": 1.0, "actor": "client[naive]", "what": "echo intact", "seq": 6}]
    assert [(r.actor, r.what, r.count) for r in fold(timeline)] == [
        ("client[naive]", "echo intact", 3), ("client[naive]", "ERROR X", 1),
        ("client[naive]", "echo intact", 2),          # the other client's event does not break it
        ("client[robust]", "reconnecting", 1), ("lab", "fault: crash", 1), ("client[naive]", "echo intact", 1)]


@pytest.mark.parametrize("name", [n for n in RENDERINGS if n != "svg"])
def test_every_table_shows_the_folded_row_once(name: str) -> None:
    text = RENDERINGS[name](streamed(sample("frozen_process")))
    assert text.count("echo intact ×300 (seq 1–300, +0.215 s…+3.205 s)") == 1
    assert text.count("echo intact ×300 (seq 1–300, +0.210 s…+3.200 s)") == 1   # robust's traffic too
    assert "seq=17" not in text and "seq 17," not in text                      # no single echo row left


def test_the_svg_draws_the_folded_run_as_one_labelled_row() -> None:
    labels = svg_texts(render_svg(streamed(sample("frozen_process"))))
    assert sum(label.startswith("echo #1–#300 (×300) intact, 100 B each, +0.215 s → +3.205 s") for label in labels) == 1
    assert sum(label.startswith("echo #1–#300 (×300) intact, 100 B each, +0.210 s → +3.200 s") for label in labels) == 1
    assert not any(label.startswith("echo #17") for label in labels)


# -- times since the fault ----------------------------------------------------------------------

def test_the_fault_counts_from_when_it_was_in_place() -> None:
    refused = sample("refused")
    assert (refused["fault_at"], fault_in_place(refused)) == (0.0646, 0.2333)   # the lab took 0.169 s
    assert fault_in_place(sample("frozen_process")) == 0.148
    # A fault_at the fault or scenario chose itself ("clients connect to the full queue") is kept.
    chosen = copy.deepcopy(refused)
    chosen["fault_at"] = 0.236
    assert fault_in_place(chosen) == 0.236


@pytest.mark.parametrize("name", [n for n in RENDERINGS if n != "svg"])
def test_the_time_bound_says_how_much_of_the_time_was_the_labs(name: str) -> None:
    text = " ".join(RENDERINGS[name](sample("refused")).split())
    # The oracle's 0.172 s runs from the request; connect() failed 3 ms after the fault was in place.
    assert ("0.172 s after the fault; bound 0.5 s (that includes the lab's own 0.169 s to put the fault "
            "in place; 0.003 s after the fault was in place)") in text
    assert "fault asked for at +0.065 s, in place at +0.233 s" in text


def test_the_svg_and_the_classroom_count_from_the_fault_in_place() -> None:
    labels = svg_texts(render_svg(sample("refused")))
    # The ERROR row's own time (+0.2368 s) is 3.5 ms after "fault in place" (+0.2333 s).
    assert "ERROR ConnectRefused [ECONNREFUSED] +0.237 s, detected 0.004 s after the fault was in place" in labels
    assert any(label.startswith("fault in place: refuse (0.169 s after it was asked for") for label in labels)
    assert narrate.remember(sample("refused"))[1].startswith(
        "robust raised ConnectRefused 0.00 s after the fault was in place, as expected")


# -- no proof without a detail ------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in RENDERINGS if n != "svg"])
def test_a_proof_without_detail_is_printed_as_such(name: str) -> None:
    report = copy.deepcopy(sample("frozen_process"))
    report["fidelity"][2]["detail"] = ""
    text = RENDERINGS[name](report)
    assert NO_DETAIL in text
    assert not any(line.rstrip().endswith(report["fidelity"][2]["name"] + ":") for line in text.splitlines())


# -- who sent the packet ------------------------------------------------------------------------

CLIENT, PROXY = "127.0.0.4", "127.0.0.3"
PORTS = {"robust": 41234, "naive": 41240}


def proxied_reset() -> dict[str, Any]:
    """The refused report's shape, made into a reset: the client's capture shows Toxiproxy's RSTs.

    The pcap's first frame (START_NS + 1 ms: the builder's first step) is 4 ms after the fault
    was in place, so its packets land after the fault row.
    """
    report = copy.deepcopy(sample("refused"))
    packets = []
    for n, port in enumerate(PORTS.values()):
        flow = Flow((CLIENT, port), (PROXY, 7000), start_ns=START_NS + n * 500_000)
        flow.handshake()
        flow.send("c", b"x" * 113)
        flow.send("s", flags="RA")
        packets += flow.packets
    data = write_pcap(sorted(packets, key=lambda p: p.time_ns))
    summary = summarize(data, server_port=7000)
    report["scenario"].update(name="reset", path="proxied")
    report["pcaps"] = {"client": base64.b64encode(data).decode("ascii")}
    report["facts"] = {"client_ports": {impl: [port] for impl, port in PORTS.items()},
                       "captures": {"client": {"bytes": len(data), "summary": summary.as_dict(), "text": ""}},
                       "fault_wall": START_NS / 1e9 - 0.003}
    return report


def test_capture_text_names_toxiproxy_as_the_sender_of_its_rst() -> None:
    clean, pcaps = split_pcaps(proxied_reset())
    text = capture_text(clean, pcaps)
    assert ("connection 1: client[robust] :41234 ⇄ toxiproxy:7000 (127.0.0.4:41234 → 127.0.0.3:7000): "
            "reset by toxiproxy") in text
    assert "  toxiproxy → client[naive]: 1 SYN-ACK, 0 FIN, 1 RST; 0 bytes, 0 retransmissions" in text
    assert "    +0.004000 s  toxiproxy → client[robust]  RST" in text
    assert "reset by server" not in text and "server →" not in text
    # Without the pcaps (a report read back), the lab's own summaries are named the same way.
    assert capture_text(clean, {}).split("\n", 1)[1] == text.split("\n", 1)[1]


def test_roles_follow_the_capture_point_and_the_path() -> None:
    report = proxied_reset()
    summary = summaries(report)["client"]
    assert roles_for(report, "client", summary) == {
        Endpoint(CLIENT, 41234): "client[robust]", Endpoint(CLIENT, 41240): "client[naive]",
        Endpoint(PROXY, 7000): "toxiproxy"}
    # In the server's namespace on the proxied path, the peer is Toxiproxy's own connection ...
    leg = summarize(write_pcap(_handshake(("127.0.0.3", 52000), ("127.0.0.2", 7000))), server_port=7000)
    assert roles_for(report, "server", leg) == {Endpoint("127.0.0.3", 52000): "toxiproxy",
                                                Endpoint("127.0.0.2", 7000): "server"}
    # ... and on the direct path it is the subject, by its port. Any other port says who opened the
    # connection by its range (lab/addresses.py): Toxiproxy's, the client container's (the lab's own
    # sockets), or neither ("client").
    report["scenario"]["path"] = "direct"
    direct = summarize(write_pcap(_handshake((CLIENT, 41240), ("127.0.0.2", 7000))
                                  + _handshake((CLIENT, 50000), ("127.0.0.2", 7000))
                                  + _handshake((CLIENT, 42062), ("127.0.0.2", 7000))
                                  + _handshake((CLIENT, 61000), ("127.0.0.2", 7000))), server_port=7000)
    assert roles_for(report, "server", direct) == {
        Endpoint(CLIENT, 41240): "client[naive]", Endpoint(CLIENT, 50000): "toxiproxy",
        Endpoint(CLIENT, 42062): "lab", Endpoint(CLIENT, 61000): "client", Endpoint("127.0.0.2", 7000): "server"}
    # In the client's namespace too: a port no subject recorded is the lab's, Toxiproxy's range is Toxiproxy's.
    assert {end.port: name for end, name in roles_for(report, "client", direct).items()} == {
        41240: "client[naive]", 50000: "toxiproxy", 42062: "lab", 61000: "client", 7000: "server"}


def test_report_html_links_its_pcaps_and_names_who_opened_each_connection(tmp_path: Path) -> None:
    folder = save(proxied_reset(), tmp_path / "reset")
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert (folder / "client.pcap").is_file()
    assert '<p>Captures (open them in Wireshark): <a href="client.pcap">client.pcap</a></p>' in page
    assert ("<tr><td>client.pcap</td><td>1</td><td>robust</td><td>client[robust] 127.0.0.4:41234</td>"
            "<td>toxiproxy 127.0.0.3:7000</td><td>reset by toxiproxy</td></tr>") in page
    assert "<td>client.pcap</td><td>2</td><td>naive</td>" in page


def test_the_connections_behind_the_router_are_named_by_their_ports() -> None:
    # tests/unit/data/pmtu_black_hole_report.json (its capture texts emptied): `lab run pmtu-black-hole`,
    # captured on the router's lab side and at the server; the lab's two probes come from ports no
    # subject recorded, in the client container's range.
    rows = connection_rows(sample("pmtu_black_hole"))
    assert [(r["capture"], r["index"], r["made_by"]) for r in rows] == [
        ("router-lab", 1, "naive"), ("router-lab", 2, "robust"), ("router-lab", 3, "the lab"),
        ("router-lab", 4, "the lab"), ("server", 1, "naive"), ("server", 2, "robust"), ("server", 3, "the lab"),
        ("server", 4, "the lab")]
    assert rows[6] == {"capture": "server", "index": 3, "made_by": "the lab", "from": "lab 172.30.0.3:42062",
                       "to": "server 172.30.0.2:7000", "outcome": "reset by lab"}
    page = render_html(sample("pmtu_black_hole"), connections=rows, pcaps=["router-lab.pcap", "server.pcap"])
    assert '<a href="router-lab.pcap">router-lab.pcap</a> · <a href="server.pcap">server.pcap</a>' in page
    # The lab's own probes are not drawn: they are not the story of the diagram.
    assert packet_events(sample("pmtu_black_hole")) == []


def _handshake(client: tuple[str, int], server: tuple[str, int]) -> list[Any]:
    flow = Flow(client, server)
    flow.handshake()
    return flow.packets


def test_the_svg_draws_toxiproxys_rst_from_the_toxiproxy_lane() -> None:
    report = proxied_reset()
    clean, _ = split_pcaps(report)
    events = packet_events(clean)
    # The pcap's first frame is 4 ms after "fault in place: refuse" (+0.2333 s); the RSTs come 4 ms in.
    assert [(e["actor"], e["what"], e["to"], e["t"]) for e in events] == [
        ("toxiproxy", "RST", "client[robust]", 0.2413), ("toxiproxy", "RST", "client[naive]", 0.2418)]
    root = ET.fromstring(render_svg(clean).encode())
    lane_x = AXIS_W + LANE_W * (lanes_for(clean).index("toxiproxy") + 0.5)
    robust_x = AXIS_W + LANE_W * (lanes_for(clean).index("client[robust]") + 0.5)
    labels = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "RST from toxiproxy to client[robust] (in client.pcap) +0.241 s" in labels
    arrows = [(float(line.get("x1", 0)), float(line.get("x2", 0))) for line in root.iter(f"{SVG}line")
              if line.get("marker-end") == "url(#head-fault)"]
    assert (lane_x - 6, robust_x + 6) in arrows          # from the Toxiproxy lane to the robust client's


def test_a_direct_capture_names_the_clients_and_draws_their_fins() -> None:
    report = copy.deepcopy(sample("frozen_process"))
    report["facts"]["client_ports"] = {"robust": [37736], "naive": [37740]}
    text = capture_text(report, {})
    assert ("connection 1: client[robust] :37736 ⇄ server:7000 (192.168.192.4:37736 → 192.168.192.2:7000): "
            "half-closed by client[robust]") in text
    assert ("    +3.027636 s  client[robust] → server  keepalive probe, then server → client[robust]  "
            "keepalive answered; ×9 until +11.219651 s") in text
    # The capture began at connect (+0.1255 s); "fault in place" is +0.148 s: 22.5 ms into the capture.
    start = report["facts"]["captures"]["server"]["summary"]["start"]
    report["facts"]["fault_wall"] = start + 0.0225
    fins = [(e["actor"], e["to"], e["t"]) for e in packet_events(report)]
    assert fins == [("client[naive]", "server", 12.1432), ("client[robust]", "server", 12.1435)]
    assert "FIN from client[robust] to server (in server.pcap) +12.143 s" in svg_texts(render_svg(report))


def test_a_real_reset_run_credits_every_rst_to_toxiproxy() -> None:
    # tests/unit/data/reset_nat_report.json: `lab run --all`'s reset, captured in both namespaces,
    # behind the NAT router: at the server Toxiproxy has the router's address, and is known by its port.
    report = sample("reset_nat")
    text = capture_text(report, {})
    assert text.count("reset by toxiproxy") == 4 and "reset by server" not in text
    assert ("connection 1: client[robust] :38880 ⇄ toxiproxy:7000 (172.31.0.4:38880 → 172.31.0.3:7000): "
            "reset by toxiproxy") in text                                       # at the client
    assert ("connection 1: toxiproxy :54380 ⇄ server:7000 (172.30.0.2:54380 → 172.30.0.3:7000): "
            "reset by toxiproxy") in text                                       # and at the server
    assert "    +0.004037 s  toxiproxy → client[robust]  RST" in text
    rows = [(e["actor"], e["what"], e["to"]) for e in packet_events(report)]
    assert rows == [("toxiproxy", "RST", "client[robust]"), ("toxiproxy", "RST", "server"),
                    ("toxiproxy", "RST", "client[naive]"), ("toxiproxy", "RST", "server")]
    labels = svg_texts(render_svg(report))
    assert "RST from toxiproxy to client[robust] (in client.pcap) +0.192 s" in labels
    assert not any("from server" in label for label in labels)


# --------------------------------------------------------------------------- the run --all matrix's cells

def _verdict(status: str, error: str | None = None, *, failed: tuple[str, ...] = (), corrupt: int = 0
             ) -> dict[str, Any]:
    checks = [{"name": name, "ok": name not in failed, "detail": ""} for name in ("outcome", "time bound")]
    return {"ok": not failed, "checks": checks,
            "outcome": {"status": status, "error": error, "corrupt": corrupt}}


@pytest.mark.parametrize(("verdict", "expect", "cell"), [
    (_verdict("blocked"), {"status": "blocked"}, "blocked (as expected)"),
    (_verdict("error", "PeerReset"), {"status": "error", "errors": ["PeerReset"]}, "PeerReset (as expected)"),
    (_verdict("completed"), {"status": "completed"}, "completed (as expected)"),
    (_verdict("completed", corrupt=2), {"status": "completed", "corrupt": True},
     "completed, corrupt data (as expected)"),
    (_verdict("error", "PeerReset", failed=("outcome",)), {"status": "completed"},
     "FAIL: PeerReset, expected completed"),
    (_verdict("blocked", failed=("outcome",)), {"status": "error", "errors": ["PeerUnresponsive", "PeerReset"]},
     "FAIL: blocked, expected PeerUnresponsive or PeerReset"),
    (_verdict("error", "PeerUnresponsive", failed=("time bound",)), {"status": "error", "errors": ["PeerUnresponsive"]},
     "FAIL: PeerUnresponsive, time bound failed"),
    ({"ok": True, "checks": []}, None, "PASS"),   # no outcome recorded: the verdict alone
])
def test_a_matrix_cell_says_what_happened_and_whether_it_was_expected(verdict: dict[str, Any],
                                                                      expect: dict[str, Any] | None,
                                                                      cell: str) -> None:
    assert views.matrix_cell(verdict, expect) == cell


def test_the_matrix_keeps_the_fault_proof_column_and_marks_a_broken_file() -> None:
    report = json.loads((DATA / "reset_report.json").read_text())
    impls, rows = views.matrix_rows({"reset": report, "mine": {"error": "mine.py: boom", "ok": False,
                                                               "broken": True}})
    assert impls == ["robust", "naive"]
    assert rows[0]["cells"] == {"robust": "PeerReset (as expected)", "naive": "ConnectionResetError (as expected)"}
    assert [row["fidelity"] for row in rows] == ["proven", "BROKEN"]
    assert rows[1]["cells"] == {} and rows[1]["detail"] == "mine.py: boom" and rows[1]["ok"] is False
    text = views.plain_matrix(impls, rows).splitlines()
    assert text[0].split() == ["scenario", "robust", "naive", "fault", "proven"]
    assert text[2].split() == ["mine", "—", "—", "BROKEN"]
