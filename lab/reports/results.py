"""Where a run's evidence is kept: one folder per run, ``results/<UTC timestamp>-<scenario>/``.

::

    from lab.reports.results import default_dir, save
    folder = save(report, default_dir(repo, "refused"))     # report: the runner's JSON, with "pcaps"

writes ``report.json`` (the report without the raw captures), ``timeline.svg``
(:mod:`lab.reports.picture`), ``report.html`` and ``report.md`` (:mod:`lab.reports.document`),
and, when the scenario captured, ``server.pcap`` / ``client.pcap`` (open them in
Wireshark) and ``capture.txt`` (:func:`lab.evidence.render` of each).

A capture knows addresses, not who is who: :func:`roles_for` names each connection's ends from
the report (the subjects' local ports, the ephemeral port ranges of lab/addresses.py, the capture
point, the scenario's path), so a packet that Toxiproxy sent is Toxiproxy's, in ``capture.txt``,
in report.html's table of connections (:func:`connection_rows`) and in the diagram, never the
server's, and a probe of the lab's own is the lab's.

:func:`matrix_summary` is ``lab run --all``'s matrix.json, whose paths are relative to its folder.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from lab import addresses
from lab.inlab import runreport
from lab.inlab.runreport import RunReport
from pathlib import Path
from typing import Any

__all__ = ["default_dir", "save", "capture_text", "split_pcaps", "summaries", "roles_for", "matrix_summary",
           "MATRIX_SCHEMA_VERSION", "who_made", "connection_rows"]

# matrix.json's own format (``lab run --all``), versioned like report.json's (runreport.SCHEMA_VERSION):
# it changes whenever a key is renamed, removed or changes its meaning.
MATRIX_SCHEMA_VERSION = 1

_PORT_RE = re.compile(r"port (\d+)")


def default_dir(repo: Path, label: str, *, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path(repo) / "results" / f"{stamp}-{label}"


def matrix_summary(impls: list[str], rows: list[dict[str, Any]], base: Path) -> dict[str, Any]:
    """matrix.json of a ``lab run --all`` folder ``base``: each row's ``results`` relative to it.

    Relative, so the folder can be moved, copied or downloaded as a CI artefact and still say
    where each scenario's evidence is (and so it names no one's home directory).
    """
    relative = [{**row, "results": _relative(row.get("results"), base)} for row in rows]
    return {"schema_version": MATRIX_SCHEMA_VERSION, "ok": all(row["ok"] for row in rows),
            "implementations": impls, "rows": relative}


def _relative(folder: Any, base: Path) -> str | None:
    if not folder:
        return None
    try:
        return Path(folder).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{folder} is not inside the results folder {base}") from None


def split_pcaps(report: RunReport) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report without its base64 captures, and the captures as bytes."""
    clean = {k: v for k, v in report.items() if k != "pcaps"}
    pcaps = {where: base64.b64decode(data) for where, data in (report.get("pcaps") or {}).items()}
    return clean, pcaps


def _capture_port(report: RunReport, where: str) -> int | None:
    # The runner notes the filter when it starts a capture ("capturing at the server", filter="tcp and port 7000").
    for event in report.get("timeline", []):
        if event.get("what") == f"capturing at the {where}":
            found = _PORT_RE.search(str(event.get("filter", "")))
            if found:
                return int(found.group(1))
    return None


def summaries(report: RunReport, pcaps: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Each capture point's :class:`~lab.evidence.CaptureSummary`: read from its pcap when given, else
    the summary the runner made in the lab (kept in the report's facts). An unreadable pcap is its
    :class:`~lab.evidence.CaptureError` instead."""
    from lab.evidence import CaptureError, summarize
    from lab.evidence.tcp import summary_from_dict

    found: dict[str, Any] = {}
    for where, data in sorted((pcaps or {}).items()):
        try:
            found[where] = summarize(data, server_port=_capture_port(report, where))
        except CaptureError as exc:
            found[where] = exc
    for where, capture in sorted((report.get("facts", {}).get("captures") or {}).items()):
        if where not in found and isinstance(capture.get("summary"), dict):
            found[where] = summary_from_dict(capture["summary"])
    return found


def roles_for(report: RunReport, where: str, summary: Any) -> dict[Any, str]:
    """Who each end of each captured connection is: {Endpoint: "client[robust]" | "toxiproxy" | "lab" | "server" | "client"}.

    ``where`` is the capture point: "client" is the client's namespace, whose peer is the server
    on the direct path and Toxiproxy on the proxied one; anywhere else (the server's namespace,
    the router's) the accepting end is the server. Who opened a connection is told by its local
    port, since behind the NAT router every client has the router's address but keeps its port:

    - a port a subject recorded (``facts["client_ports"]``) is that subject's, "client[robust]";
    - a port of Toxiproxy's ephemeral range (lab.addresses.TOXIPROXY_PORT_RANGE) is "toxiproxy";
    - any other port of the client container's range (CLIENT_PORT_RANGE) is "lab": the runner's
      own sockets there (fillers, bystanders, the probes of a proof);
    - outside both ranges (a capture of another set-up), as before: on the proxied path a peer of
      the server whose address is not the client's is Toxiproxy, anything else just "client".
    """
    proxied = report.get("scenario", {}).get("path") == "proxied"
    by_port = {int(port): f"client[{impl}]" for impl, ports in
               (report.get("facts", {}).get("client_ports") or {}).items() for port in ports}
    client_hosts = _client_hosts(report)
    names: dict[Any, str] = {}
    for conn in summary.connections:
        maker = _maker(conn.client.port, by_port)
        if where == "client":
            names[conn.client] = maker or "client"
            names[conn.server] = "toxiproxy" if proxied else "server"
        else:
            names[conn.server] = "server"
            if maker:
                names[conn.client] = maker
            elif proxied and conn.client.host not in client_hosts:
                names[conn.client] = "toxiproxy"   # the proxy's own connection to the server
            else:
                names[conn.client] = "client"
    return names


def _maker(port: int, by_port: dict[int, str]) -> str | None:
    if port in by_port:
        return by_port[port]
    if addresses.TOXIPROXY_PORT_RANGE[0] <= port <= addresses.TOXIPROXY_PORT_RANGE[1]:
        return "toxiproxy"
    if addresses.CLIENT_PORT_RANGE[0] <= port <= addresses.CLIENT_PORT_RANGE[1]:
        return "lab"
    return None


# Who opened a connection, in words, for report.html's table of connections.
_MAKERS = {"toxiproxy": "Toxiproxy", "lab": "the lab", "client": "a client (unknown)", "server": "the server"}


def who_made(role: str) -> str:
    """A role of :func:`roles_for` as a reader says it: "robust", "naive", "Toxiproxy", "the lab"."""
    if role.startswith("client[") and role.endswith("]"):
        return role[len("client["):-1]
    return _MAKERS.get(role, role)


def connection_rows(report: RunReport, pcaps: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """Every captured connection: capture, index, who opened it, its two ends (role and address), outcome."""
    from lab.evidence import CaptureError
    from lab.evidence.text import named_outcome

    rows = []
    for where, summary in summaries(report, pcaps).items():
        if isinstance(summary, CaptureError):
            continue
        names = roles_for(report, where, summary)
        for conn in summary.connections:
            client, server = names.get(conn.client, "client"), names.get(conn.server, "server")
            rows.append({"capture": f"{where}.pcap" if where in (pcaps or {}) else where, "index": conn.index,
                         "made_by": who_made(client), "from": f"{client} {conn.client}",
                         "to": f"{server} {conn.server}",
                         "outcome": named_outcome(conn.outcome, client, server)})
    return rows


def _client_hosts(report: RunReport) -> set[str]:
    # The client's own address, where a capture in its namespace shows it.
    capture = (report.get("facts", {}).get("captures") or {}).get("client") or {}
    return {str(c.get("client", "")).rpartition(":")[0].strip("[]")
            for c in (capture.get("summary") or {}).get("connections", [])}


def capture_text(report: RunReport, pcaps: dict[str, bytes]) -> str | None:
    """lab.evidence.render of each pcap, its ends named by role; without pcaps, the summaries the
    runner made in the lab, named the same way."""
    from lab.evidence import CaptureError, render

    parts = []
    lab_only = report.get("facts", {}).get("captures") or {}
    for where, summary in summaries(report, pcaps).items():
        if where in pcaps:
            head = f"== {where}.pcap ({len(pcaps[where])} bytes)"
        else:
            head = f"== {where} (summarised in the lab)"
        if isinstance(summary, CaptureError):
            text = f"unreadable capture: {summary}\n"
        else:
            text = render(summary, roles_for(report, where, summary))
        parts.append(f"{head}\n{text}")
    for where, capture in sorted(lab_only.items()):
        if where not in pcaps and not isinstance(capture.get("summary"), dict):
            parts.append(f"== {where} (summarised in the lab)\n{capture.get('text', '')}")
    return "\n".join(parts) if parts else None


def save(report: RunReport, folder: Path) -> Path:
    """Write every file of one run into ``folder`` (created); returns it."""
    from lab.reports.picture import render_svg
    from lab.reports.document import render_html, render_markdown

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean, pcaps = split_pcaps(report)
    (folder / "report.json").write_text(runreport.dumps(clean, indent=2) + "\n", encoding="utf-8")
    svg = render_svg(clean)
    (folder / "timeline.svg").write_text(svg, encoding="utf-8")
    for where, data in pcaps.items():
        (folder / f"{where}.pcap").write_bytes(data)
    text = capture_text(clean, pcaps)
    if text:
        (folder / "capture.txt").write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(render_html(clean, svg=svg, capture_text=text,
                                                    pcaps=[f"{where}.pcap" for where in sorted(pcaps)],
                                                    connections=connection_rows(clean, pcaps)), encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(clean, capture_text=text), encoding="utf-8")
    return folder
