"""One scenario run as a self-contained document: HTML (with the SVG inline) or Markdown.

Both carry the same parts: the scenario's explanation (HOWTO section, what
happens on the wire, how the lab makes it happen, what each implementation
must do), the timeline as a table, the sequence diagram, the verdict checks
per implementation, the fidelity checks (proof the fault happened) and the
packets: in HTML, links to the run's pcaps beside the page and a table of every
captured connection with who opened it; then the packet summary text. ::

    from lab.reports.document import render_html, render_markdown
    html = render_html(report, svg=render_svg(report), capture_text=text)
    md = render_markdown(report, capture_text=text, svg_name="timeline.svg")

Every value from the report is escaped for its format (a message can hold
``<script>``: in HTML it is shown, never run; in Markdown it cannot become
markup or break a table).
"""

from __future__ import annotations

import html
from urllib.parse import quote

from lab.inlab import timeline as tl
from lab.inlab.runreport import RunReport
from typing import Any

__all__ = ["render_html", "render_markdown", "expectation_line"]

_CSS = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1250px;
       color: #212121; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: .2em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } td, th { border: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; font-size: 14px; } th { background: #f5f5f5; }
.ok { color: #1b7f3b; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 13px; }
.verdict { font-size: 1.3em; } .remember { border-left: 4px solid #1565c0; padding: .3em 1em; background: #e3f2fd; }
figure { margin: 0; overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _flag(ok: Any) -> str:
    return '<span class="ok">ok</span>' if ok else '<span class="fail">FAIL</span>'


def expectation_line(oracle: dict[str, Any], watchdog: Any = None) -> str:
    """What one implementation must do, in words, from its Expect (as a dict)."""
    status = oracle.get("status")
    if status == "completed":
        text = "completes every exchange intact"
    elif status == "error":
        text = "raises " + " or ".join(oracle.get("errors") or ["an error"])
    else:
        text = "stays blocked inside a call until the watchdog" + (f" ({watchdog:g} s)" if isinstance(
            watchdog, (int, float)) else "")
    if oracle.get("within") is not None and status != "blocked":
        text += f" within {oracle['within']:g} s of the fault"
    detail = oracle.get("detail") or {}
    if detail:
        text += " (" + ", ".join(f"{k} = {' or '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                                 for k, v in detail.items()) + ")"
    text += "; returns wrong data without an error" if oracle.get("corrupt") else "; no corrupt data"
    if oracle.get("note"):
        text += f" — {oracle['note']}"
    return text


def _facts(row: tl.Run) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.shown_facts().items())


def _rows(report: RunReport) -> list[tuple[str, str, str, str, str]]:
    """(t, since the fault, who, what, facts) per timeline row, runs of identical events folded."""
    out = []
    for row in tl.fold(report.get("timeline", [])):
        since = tl.since_fault(report, row.t)
        out.append((f"{row.t:.3f}", f"{since:+.3f}" if since is not None and since >= 0 else "", row.actor,
                    row.label(), _facts(row)))
    return out


def _fault_when(report: RunReport) -> str:
    return tl.fault_line(report) or "no fault was injected"


def render_html(report: RunReport, *, svg: str | None = None, capture_text: str | None = None,
                pcaps: list[str] | None = None, connections: list[dict[str, Any]] | None = None) -> str:
    """The page. ``pcaps``: the capture files beside it (linked by name, relative); ``connections``:
    :func:`lab.reports.results.connection_rows`, each connection with who opened it."""
    s = report.get("scenario", {})
    ok = report.get("ok")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_e(s.get('name', 'scenario'))}: {'PASS' if ok else 'FAIL'}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>{_e(s.get('title', '?'))} <small>({_e(s.get('name', '?'))})</small></h1>",
           f'<p class="sub">HOWTO section: <b>{_e(s.get("howto", "?"))}</b> · path: {_e(s.get("path", "?"))} · '
           f"watchdog: {_e(report.get('watchdog_s', '?'))} s · {_e(_fault_when(report))}</p>",
           f'<p class="verdict">verdict: {_flag(ok).replace(">ok<", ">PASS<")}</p>',
           f'<p class="remember"><b>Remember:</b> {_e(s.get("remember", ""))}</p>',
           "<h2>What happens</h2>",
           f"<p><b>On the wire.</b> {_e(' '.join(str(s.get('wire', '')).split()))}</p>",
           f"<p><b>How the lab does it.</b> {_e(' '.join(str(s.get('injection', '')).split()))}</p>",
           "<h2>What each implementation must do</h2><ul>"]
    for impl, oracle in s.get("expect", {}).items():
        out.append(f"<li><b>{_e(impl)}</b>: {_e(expectation_line(oracle, report.get('watchdog_s')))}</li>")
    out.append("</ul>")
    if svg:
        # picture.render_svg escapes its own text; the XML prolog is not allowed inside HTML.
        inline = svg.split("?>", 1)[1] if svg.lstrip().startswith("<?xml") else svg
        out += ["<h2>Sequence diagram</h2>", f"<figure>{inline}</figure>"]
    out += ["<h2>Timeline</h2>", "<table><tr><th>t (s)</th><th>since the fault (s)</th><th>who</th><th>what</th>"
            "<th>facts</th></tr>"]
    for row in _rows(report):
        out.append("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>")
    out.append("</table>")
    out.append("<h2>Verdicts</h2>")
    for impl, verdict in report.get("verdicts", {}).items():
        out.append(f"<h3>{_e(impl)}: {_flag(verdict.get('ok')).replace('>ok<', '>PASS<')}</h3>")
        out.append(_checks_table(verdict.get("checks", []), report, impl))
    out.append(f"<h2>Fidelity: did the fault really happen? {_flag(report.get('fidelity_ok'))}</h2>")
    out.append(_checks_table(report.get("fidelity", [])) if report.get("fidelity")
               else '<p class="fail">no evidence was recorded that the fault happened</p>')
    if report.get("aborted"):
        out.append(f'<p class="fail">ABORTED: {_e(report["aborted"])}</p>')
    out.append("<h2>Packets</h2>")
    if pcaps:
        out.append("<p>Captures (open them in Wireshark): "
                   + " · ".join(f'<a href="{_e(quote(name))}">{_e(name)}</a>' for name in pcaps) + "</p>")
    if connections:
        out.append("<table><tr><th>capture</th><th>#</th><th>opened by</th><th>from</th><th>to</th>"
                   "<th>outcome</th></tr>")
        for c in connections:
            out.append("<tr>" + "".join(f"<td>{_e(c.get(key, ''))}</td>" for key in
                                        ("capture", "index", "made_by", "from", "to", "outcome")) + "</tr>")
        out.append("</table>")
    out.append(f"<pre>{_e(capture_text)}</pre>" if capture_text else "<p>This scenario took no capture.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _checks_table(checks: list[dict[str, Any]], report: RunReport | None = None, impl: str | None = None) -> str:
    rows = "".join(f"<tr><td>{_flag(c.get('ok'))}</td><td>{_e(c.get('name', ''))}</td>"
                   f"<td>{_e(tl.detail_of(c, report, impl))}</td></tr>" for c in checks)
    return f"<table><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table>"


def _md(value: Any) -> str:
    """Text safe in a Markdown paragraph or table cell: no raw HTML, no markup, no cell breaks."""
    text = " ".join(str(value).split())
    text = html.escape(text, quote=False)
    for char in ("\\", "`", "*", "_", "[", "]", "|", "#"):
        text = text.replace(char, "\\" + char)
    return text


def _fence(text: str) -> str:
    # A fence longer than any run of backticks inside, so the block cannot be closed early.
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def render_markdown(report: RunReport, *, capture_text: str | None = None,
                    svg_name: str | None = "timeline.svg") -> str:
    s = report.get("scenario", {})
    ok = report.get("ok")
    lines = [f"# {_md(s.get('title', '?'))} ({_md(s.get('name', '?'))}): {'PASS' if ok else 'FAIL'}", "",
             f"HOWTO section: **{_md(s.get('howto', '?'))}** · path: {_md(s.get('path', '?'))} · "
             f"watchdog: {_md(report.get('watchdog_s', '?'))} s · {_md(_fault_when(report))}", "",
             f"> **Remember:** {_md(s.get('remember', ''))}", "",
             "## What happens", "", f"**On the wire.** {_md(s.get('wire', ''))}", "",
             f"**How the lab does it.** {_md(s.get('injection', ''))}", "",
             "## What each implementation must do", ""]
    for impl, oracle in s.get("expect", {}).items():
        lines.append(f"- **{_md(impl)}**: {_md(expectation_line(oracle, report.get('watchdog_s')))}")
    if svg_name:
        lines += ["", "## Sequence diagram", "", f"![sequence diagram]({svg_name})"]
    lines += ["", "## Timeline", "", "| t (s) | since the fault (s) | who | what | facts |",
              "| ---: | ---: | --- | --- | --- |"]
    for row in _rows(report):
        lines.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    lines += ["", "## Verdicts"]
    for impl, verdict in report.get("verdicts", {}).items():
        lines += ["", f"### {_md(impl)}: {'PASS' if verdict.get('ok') else 'FAIL'}", ""]
        lines += _md_checks(verdict.get("checks", []), report, impl)
    lines += ["", f"## Fidelity: {'the fault really happened' if report.get('fidelity_ok') else 'FAULT NOT PROVEN'}",
              ""]
    lines += _md_checks(report.get("fidelity", [])) or ["No evidence was recorded that the fault happened."]
    if report.get("aborted"):
        lines += ["", f"**ABORTED:** {_md(report['aborted'])}"]
    lines += ["", "## Packets", ""]
    lines.append(_fence(capture_text) if capture_text else "This scenario took no capture.")
    return "\n".join(lines) + "\n"


def _md_checks(checks: list[dict[str, Any]], report: RunReport | None = None, impl: str | None = None) -> list[str]:
    if not checks:
        return []
    rows = ["| | check | detail |", "| --- | --- | --- |"]
    rows += [f"| {'ok' if c.get('ok') else '**FAIL**'} | {_md(c.get('name', ''))} | "
             f"{_md(tl.detail_of(c, report, impl))} |" for c in checks]
    return rows
