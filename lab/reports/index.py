"""``index.html`` of a ``lab run --all`` folder: every scenario's verdicts and fault proof, linking its report.

Sans-IO: the matrix (:func:`lab.reports.views.matrix_rows`, each row's ``results`` already
relative to the folder) in, one HTML page out. It must open from a CI artefact or a copied
folder, without a network: the links are relative, the CSS is inline and nothing is fetched. ::

    from lab.reports.index import render_index
    (base / "index.html").write_text(render_index(impls, rows), encoding="utf-8")
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

__all__ = ["render_index"]

_CSS = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1250px;
       color: #212121; line-height: 1.45; padding: 0 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } td, th { border: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; font-size: 14px; } th { background: #f5f5f5; }
.ok { color: #1b7f3b; font-weight: bold; } .fail { color: #c62828; font-weight: bold; } .none { color: #999; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell_class(value: str) -> str:
    if value == "—":
        return "none"
    return "ok" if value.endswith("(as expected)") or value in ("PASS", "proven") else "fail"


def _link(row: dict[str, Any]) -> str:
    # Only a scenario that ran has a report.html; a broken file or a run that failed to start has none.
    folder = row.get("results")
    if not folder or row.get("fidelity") in ("BROKEN", "ERROR"):
        return _e(row["scenario"])
    return f'<a href="{_e(quote(str(folder)))}/report.html">{_e(row["scenario"])}</a>'


def render_index(impls: list[str], rows: list[dict[str, Any]], *, title: str = "lab run --all",
                 files: tuple[str, ...] = ("matrix.json",)) -> str:
    """The page: a summary line, then one table row per scenario (cells as in the terminal matrix).

    ``files``: other files of the folder to link (relative names), such as the JUnit XML.
    """
    passed = sum(1 for row in rows if row.get("ok"))
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_e(title)}: {passed} of {len(rows)} passed</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>",
           f'<p class="{"ok" if passed == len(rows) else "fail"}">{passed} of {len(rows)} scenarios passed</p>',
           "<table><tr><th>scenario</th>" + "".join(f"<th>{_e(impl)}</th>" for impl in impls)
           + "<th>fault proven</th><th>detail</th></tr>"]
    for row in rows:
        cells = [row.get("cells", {}).get(impl, "—") for impl in impls] + [row.get("fidelity", "?")]
        out.append(f"<tr><td>{_link(row)}</td>"
                   + "".join(f'<td class="{_cell_class(c)}">{_e(c)}</td>' for c in cells)
                   + f"<td>{_e(row.get('detail') or '')}</td></tr>")
    out.append("</table>")
    if files:
        out.append("<p>" + " · ".join(f'<a href="{_e(quote(name))}">{_e(name)}</a>' for name in files) + "</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
