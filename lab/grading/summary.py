"""A class summary: many report cards in, one table out (CSV, Markdown or a self-contained HTML page).

When a class is graded, each submission gets its own card in ``<results>/<stem>/card.json``
and ``report.md``. This module turns those cards into one table: a row for each submission
(its verdict, how many scenarios it handled well out of how many it was graded on, the verdict
in each scenario) and a closing TOTAL row. Sans-IO: it takes cards and returns text, and the
caller writes the files. The links point to each card's ``report.md`` relative to the summary,
so the folder can be copied or opened from a CI artefact as it is. ::

    from lab.grading import summary
    table = summary.rows(cards, [path.stem for path in paths])   # one card folder for each card
    names = summary.scenarios(cards)
    (results / "summary.csv").write_text(summary.render_csv(table, names), encoding="utf-8")
    (results / "summary.md").write_text(summary.render_markdown(table, names), encoding="utf-8")
    (results / "summary.html").write_text(summary.render_html(table, names), encoding="utf-8")

Students name the files, so every text is escaped for its format: quoted by the csv module and
kept from starting a spreadsheet formula, backslash-escaped in Markdown, html-escaped in HTML.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re
from collections.abc import Sequence
from urllib.parse import quote

from lab.grading import verdicts as gv
from lab.grading.card import ReportCard, _md

__all__ = ["Row", "rows", "scenarios", "render_csv", "render_markdown", "render_html"]

TOTAL = "TOTAL"
ABSENT_HTML = "-"


@dataclasses.dataclass
class Row:
    submission: str                 # the path as given
    folder: str                     # its card folder, relative to the summary (e.g. "careful")
    verdict: str                    # "passed", "failed" or "invalid"
    cells: dict[str, str]           # scenario -> verdict word; absent when not graded there
    good: int                       # results with a good verdict
    graded: int                     # results
    reason: str = ""                # why the file is invalid, else ""


def rows(cards: Sequence[ReportCard], folders: Sequence[str]) -> list[Row]:
    """One row per card; ``folders[i]`` is the folder of ``cards[i]`` (relative, with forward slashes)."""
    if len(cards) != len(folders):
        # zip() would silently drop the tail, and every link after a gap would point at the wrong card.
        raise ValueError(f"{len(cards)} cards but {len(folders)} folders: one folder is needed for each card")
    return [Row(submission=card.submission, folder=folder, verdict=card.verdict,
                cells={r.scenario: r.verdict for r in card.results},
                good=sum(1 for r in card.results if r.verdict in gv.GOOD), graded=len(card.results),
                reason=card.reason if not card.valid else "")
            for card, folder in zip(cards, folders)]


def scenarios(cards: Sequence[ReportCard]) -> list[str]:
    """Every scenario any card was graded on, in the order first seen (so columns follow the grading order)."""
    seen: dict[str, None] = {}
    for card in cards:
        for r in card.results:
            seen.setdefault(r.scenario, None)
    return list(seen)


# Totals, the same in every format --------------------------------------------------------------------
def _passed(table: Sequence[Row]) -> str:
    return f"{sum(1 for row in table if row.verdict == 'passed')} of {len(table)} passed"


def _scenario_total(table: Sequence[Row], scenario: str) -> str:
    # Counted over the submissions graded there: an invalid file or a shorter grading is not a failure here.
    there = [row.cells[scenario] for row in table if scenario in row.cells]
    return f"{sum(1 for v in there if v in gv.GOOD)} of {len(there)} good"


def _header(names: Sequence[str]) -> list[str]:
    return ["submission", "verdict", "good", "graded", *names, "reason"]


# CSV -------------------------------------------------------------------------------------------------
# A spreadsheet runs a cell that starts with one of these as a formula (a file named "=cmd.py"); tab and
# carriage return are in OWASP's list too. A leading quote makes the spreadsheet show the text as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(table: Sequence[Row], names: Sequence[str]) -> str:
    """The table as CSV (lines end in "\\n"): a header, one line per row (a cell absent is empty), TOTAL."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    lines: list[list[object]] = [_header(names)]
    lines += [[row.submission, row.verdict, row.good, row.graded, *(row.cells.get(n, "") for n in names),
               row.reason] for row in table]
    lines.append([TOTAL, _passed(table), sum(row.good for row in table), sum(row.graded for row in table),
                  *(_scenario_total(table, n) for n in names), ""])
    writer.writerows([[_csv_cell(cell) for cell in line] for line in lines])
    return out.getvalue()


# Markdown --------------------------------------------------------------------------------------------
def _md_text(text: str) -> str:
    # Beyond card.py's _md (| and newlines, which break the table): a file name like "[x](y)" or
    # "<script>" must show as written, not become a link or raw HTML in the reader's viewer.
    return _md(re.sub(r"([\\`*_\[\]<>])", r"\\\1", text))


def _md_verdict(verdict: str, good: bool) -> str:
    return verdict if good else f"**{verdict}**"


def _href(folder: str) -> str:
    # Quoted: a space, ")" or "#" in a folder name would end or bend the link; "/" stays a separator.
    return f"{quote(folder)}/report.md"


def render_markdown(table: Sequence[Row], names: Sequence[str]) -> str:
    """A heading, how many passed, then the table (each submission linking its report.md) and its TOTAL row."""
    invalid = sum(1 for row in table if row.verdict == "invalid")
    passed = sum(1 for row in table if row.verdict == "passed")
    lines = ["# Class summary", "", f"{passed} of {len(table)} submissions passed; {invalid} invalid", "",
             "| " + " | ".join(_md_text(h) for h in _header(names)) + " |",
             "|" + " --- |" * len(_header(names))]
    for row in table:
        cells = [f"[{_md_text(row.submission)}]({_href(row.folder)})",
                 _md_verdict(row.verdict, row.verdict == "passed"), str(row.good), str(row.graded),
                 *(_md_verdict(row.cells[n], row.cells[n] in gv.GOOD) if n in row.cells else "-" for n in names),
                 _md_text(row.reason)]
        lines.append("| " + " | ".join(cells) + " |")
    totals = [f"**{TOTAL}**", _passed(table), str(sum(row.good for row in table)),
              str(sum(row.graded for row in table)), *(_scenario_total(table, n) for n in names), ""]
    lines.append("| " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


# HTML ------------------------------------------------------------------------------------------------
# Inline and self-contained like lab/reports/index.py: the page opens from a copied folder, offline.
_CSS = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       color: #212121; line-height: 1.45; padding: 0 1em; font-size: 16px; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } td, th { border: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; font-size: 14px; } th { background: #f5f5f5; }
.ok { color: #1b7f3b; font-weight: bold; } .fail { color: #c62828; font-weight: bold; } .none { color: #999; }
tr.total td { background: #f5f5f5; font-weight: bold; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _td(text: str, css: str = "") -> str:
    return f'<td class="{css}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>"


def _verdict_td(verdict: str | None) -> str:
    if verdict is None:
        return _td(ABSENT_HTML, "none")
    return _td(verdict, "ok" if verdict in gv.GOOD else "fail")


def render_html(table: Sequence[Row], names: Sequence[str]) -> str:
    """A whole page: the summary line, then the table (good cells green, bad red, absent grey) and TOTAL."""
    invalid = sum(1 for row in table if row.verdict == "invalid")
    passed = sum(1 for row in table if row.verdict == "passed")
    line = f"{passed} of {len(table)} submissions passed; {invalid} invalid"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Class summary: {_e(_passed(table))}</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Class summary</h1>", f'<p class="{"ok" if passed == len(table) else "fail"}">{_e(line)}</p>',
           "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in _header(names)) + "</tr>"]
    for row in table:
        out.append(f'<tr><td><a href="{_e(_href(row.folder))}">{_e(row.submission)}</a></td>'
                   + _td(row.verdict, "ok" if row.verdict == "passed" else "fail")
                   + _td(str(row.good)) + _td(str(row.graded))
                   + "".join(_verdict_td(row.cells.get(n)) for n in names)
                   + _td(row.reason) + "</tr>")
    out.append('<tr class="total">' + _td(TOTAL) + _td(_passed(table)) + _td(str(sum(row.good for row in table)))
               + _td(str(sum(row.graded for row in table))) + "".join(_td(_scenario_total(table, n)) for n in names)
               + _td("") + "</tr>")
    out += ["</table>", "</body></html>"]
    return "\n".join(out) + "\n"
