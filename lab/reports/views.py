"""What the ``lab`` command prints: rich views for a terminal, plain text for logs and pipes.

Every view takes the data (a scenario list, a runner report, a matrix of
results) and a :class:`rich.console.Console`; the CLI uses these only when
stdout and stderr are terminals and --json was not asked for. Elsewhere it
prints the plain-text forms here (and :func:`lab.inlab.runner.render`), which hold no
colour codes and no box drawing, so CI logs stay greppable.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from lab.inlab import timeline as tl
from lab.inlab.runreport import RunReport

__all__ = ["explanation", "list_rows", "print_list", "plain_list", "print_report", "timeline_style",
           "matrix_rows", "matrix_cell", "print_matrix", "plain_matrix", "print_status"]


def explanation(scenario: Any) -> str:
    """A scenario's one-line explanation: the first line of its file's docstring, else its title."""
    doc = (getattr(scenario.module, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else scenario.title


def list_rows(found: dict[str, Any], broken: dict[str, Exception] | None = None) -> list[dict[str, Any]]:
    """One row per scenario; a broken file (``broken``: name → its error) is a row with only ``broken``."""
    # "path" is the network path (direct or proxied); "file" is where the scenario file was found.
    rows = [{**s.summary(), "explanation": explanation(s), "file": str(s.source)} for s in found.values()]
    rows += [{"name": name, "broken": str(error)} for name, error in (broken or {}).items()]
    return rows


def print_list(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Scenarios", show_lines=False, header_style="bold")
    for column in ("name", "HOWTO section", "path", "what happens"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "broken" in row:
            table.add_row(Text(row["name"], style="bold red"), Text("BROKEN", style="bold red"), Text(""),
                          Text(row["broken"]))
            continue
        table.add_row(Text(row["name"], style="bold cyan"), Text(row["howto"]), Text(row["path"]),
                      Text(row["explanation"]))
    console.print(table)


def plain_list(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['name']:<24} BROKEN: {r['broken']}" if "broken" in r else
                     f"{r['name']:<24} {r['howto']:<20} {r['path']:<8} {r['explanation']}" for r in rows)


def timeline_style(event: dict[str, Any]) -> str:
    what = str(event.get("what", ""))
    if what.startswith("BLOCKED"):
        return "bold white on dark_red"
    if what.startswith(("ERROR", "ABORTED", "echo CORRUPT")):
        return "bold red"
    if what.startswith("fault"):
        return "red"
    if what in ("echo intact", "completed"):
        return "green"
    return ""


def _facts(row: tl.Run) -> str:
    return " ".join(f"{k}={v}" for k, v in row.shown_facts().items())


def _mark(ok: Any) -> Text:
    return Text("ok", style="green") if ok else Text("FAIL", style="bold red")


def print_timeline(console: Console, report: RunReport) -> None:
    """The timeline, runs of identical events folded into one row, with the time since the fault."""
    fault = tl.fault_line(report)
    table = Table(title="Timeline", caption=fault, header_style="bold", expand=False)
    table.add_column("t (s)", justify="right")
    table.add_column("since fault", justify="right")
    table.add_column("who")
    table.add_column("what")
    table.add_column("facts", overflow="fold", style="dim")
    for row in tl.fold(report.get("timeline", [])):
        since = tl.since_fault(report, row.t)
        # Text, not str: "client[robust]" would otherwise be read as rich markup and vanish.
        table.add_row(f"{row.t:.3f}", f"{since:+.3f}" if since is not None and since >= 0 else "",
                      Text(row.actor), Text(row.label(), style=timeline_style({"what": row.what})),
                      Text(_facts(row)))
    console.print(table)


def print_report(console: Console, report: RunReport, *, results: str | None = None) -> None:
    """One run: header, timeline, proof of the fault, each verdict with its checks, the verdict."""
    s = report["scenario"]
    console.rule(f"[bold]{escape(s['title'])}[/] ({escape(s['name'])})")
    console.print(f"[dim]HOWTO:[/] {escape(s['howto'])}   [dim]path:[/] {escape(s['path'])}")
    console.print(f"[dim]wire:[/] {escape(' '.join(s['wire'].split()))}")
    console.print(f"[dim]injection:[/] {escape(' '.join(s['injection'].split()))}")
    print_timeline(console, report)
    console.print("[bold]Did the fault really happen?[/]")
    for check in report.get("fidelity") or [{"ok": False, "name": "no evidence recorded",
                                             "detail": "the scenario proved nothing"}]:
        console.print(Text.assemble("  [", _mark(check["ok"]), f"] {check['name']}: {tl.detail_of(check)}"))
    for impl, verdict in report.get("verdicts", {}).items():
        console.print(Text.assemble(Text(f"{impl}: ", style="bold"),
                                    Text("PASS", style="bold green") if verdict["ok"] else
                                    Text("FAIL", style="bold red")))
        for check in verdict["checks"]:
            console.print(Text.assemble("  [", _mark(check["ok"]), f"] {check['name']}: "
                                        f"{tl.detail_of(check, report, impl)}"))
    if report.get("aborted"):
        console.print(f"[bold red]ABORTED:[/] {escape(str(report['aborted']))}")
    console.print(Text.assemble("verdict: ", Text("PASS", style="bold green") if report["ok"] else
                                Text("FAIL", style="bold red")))
    console.print(f"[bold blue]remember:[/] {escape(s['remember'])}")
    if results:
        console.print(f"[dim]results:[/] {escape(results)}")


def matrix_rows(reports: dict[str, RunReport]) -> tuple[list[str], list[dict[str, Any]]]:
    """(implementations, rows) for the scenario × implementation matrix of ``lab run --all``.

    ``reports`` maps a scenario name to its report, or to ``{"error": message}`` when it could not run.
    """
    impls: list[str] = []
    for rep in reports.values():
        for impl in rep.get("verdicts", {}):
            if impl not in impls:
                impls.append(impl)
    rows = []
    for name, rep in reports.items():
        expect = rep.get("scenario", {}).get("expect", {})
        cells = {impl: matrix_cell(v, expect.get(impl)) for impl, v in rep.get("verdicts", {}).items()}
        if rep.get("broken"):
            fidelity = "BROKEN"   # the scenario file would not load: nothing ran
        elif rep.get("error"):
            fidelity = "ERROR"
        elif rep.get("aborted"):
            fidelity = "ABORTED"
        else:
            fidelity = "proven" if rep.get("fidelity_ok") else "NOT PROVEN"
        ok = bool(rep.get("ok")) and not rep.get("error")
        rows.append({"scenario": name, "cells": cells, "fidelity": fidelity, "ok": ok,
                     "detail": rep.get("error") or rep.get("aborted") or "", "results": rep.get("results")})
    return impls, rows


def _did(outcome: dict[str, Any]) -> str:
    """What an implementation did, in a word: completed, blocked, or the error it raised."""
    did = (outcome.get("error") or "error") if outcome.get("status") == "error" else str(outcome.get("status"))
    return f"{did}, corrupt data" if outcome.get("corrupt") else did


def _wanted(expect: dict[str, Any]) -> str:
    if expect.get("status") == "error":
        return " or ".join(expect.get("errors") or ()) or "an error"
    return f"{expect.get('status')}{', corrupt data' if expect.get('corrupt') else ''}"


def matrix_cell(verdict: dict[str, Any], expect: dict[str, Any] | None) -> str:
    """One implementation's cell: what it did and whether that was expected.

    ``PeerReset (as expected)``, ``blocked (as expected)``; a failed one says what differed:
    ``FAIL: PeerReset, expected completed``, or ``FAIL: PeerUnresponsive, time bound failed``
    when the outcome was right and another check was not.
    """
    outcome = verdict.get("outcome")
    if not outcome:   # nothing recorded of what it did: the verdict alone
        return "PASS" if verdict.get("ok") else "FAIL"
    did = _did(outcome)
    if verdict.get("ok"):
        return f"{did} (as expected)"
    failed = [c["name"] for c in verdict.get("checks", []) if not c.get("ok")]
    if "outcome" in failed and expect:
        return f"FAIL: {did}, expected {_wanted(expect)}"
    return f"FAIL: {did}, {', '.join(failed) or 'a check'} failed"


def _cell_style(value: str) -> str:
    if value.endswith("(as expected)") or value in ("PASS", "proven"):
        return "bold green" if value != "proven" else "green"
    return "dim" if value == "—" else "bold red"


def print_matrix(console: Console, impls: list[str], rows: list[dict[str, Any]]) -> None:
    table = Table(title="Scenario × implementation", header_style="bold")
    table.add_column("scenario")
    for impl in impls:
        table.add_column(impl, justify="center")
    table.add_column("fault proven", justify="center")
    for row in rows:
        cells = [row["cells"].get(impl, "—") for impl in impls] + [row["fidelity"]]
        table.add_row(Text(row["scenario"]), *(Text(c, style=_cell_style(c)) for c in cells))
    console.print(table)
    for row in rows:
        if row["detail"]:
            console.print(f"[red]{escape(row['scenario'])}:[/] {escape(str(row['detail']))}")


def plain_matrix(impls: list[str], rows: list[dict[str, Any]]) -> str:
    # Each implementation's column is as wide as its name or its widest cell (plus a gap), so cells stay apart.
    widths = {impl: max([len(impl), 8, *(len(row["cells"].get(impl, "")) for row in rows)]) + 2 for impl in impls}
    lines = [f"{'scenario':<26}" + "".join(f"{impl:<{widths[impl]}}" for impl in impls) + "fault proven"]
    for row in rows:
        lines.append(f"{row['scenario']:<26}"
                     + "".join(f"{row['cells'].get(impl, '—'):<{widths[impl]}}" for impl in impls)
                     + row["fidelity"])
    lines += [f"{row['scenario']}: {row['detail']}" for row in rows if row["detail"]]
    passed = sum(1 for row in rows if row["ok"])
    lines.append(f"{passed} of {len(rows)} scenarios passed")
    return "\n".join(lines)


def print_status(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(header_style="bold")
    for column in ("service", "state", "health", "container"):
        table.add_column(column)
    for row in rows:
        health = str(row.get("Health", "") or "-")
        table.add_row(Text(str(row.get("Service", "?"))), Text(str(row.get("State", "?"))),
                      Text(health, style="green" if health == "healthy" else "yellow"), Text(str(row.get("Name", ""))))
    console.print(table)
