"""The class summary (lab.grading.summary): report cards built here in, CSV, Markdown and HTML out.

Four submissions cover the cases: one passed everywhere, one failed (a hung and a corrupt
result), one the static check refused, one graded on a single scenario only.
"""

from __future__ import annotations

import csv
import io

import pytest

from lab.grading import summary
from lab.grading import verdicts as gv
from lab.grading.card import ReportCard, ScenarioResult

SCENARIOS = ["clean-close", "peer-reset", "black-hole"]


def result(scenario: str, verdict: str) -> ScenarioResult:
    return ScenarioResult(scenario=scenario, title=scenario, verdict=verdict, reason="why", careful="careful")


def class_cards() -> list[ReportCard]:
    return [
        ReportCard(submission="careful.py", impl="sandbox", results=[
            result("clean-close", gv.SURVIVED), result("peer-reset", gv.REPORTED), result("black-hole", gv.REPORTED)]),
        ReportCard(submission="sloppy.py", impl="sandbox", results=[
            result("clean-close", gv.SURVIVED), result("peer-reset", gv.CORRUPT), result("black-hole", gv.HUNG)]),
        ReportCard(submission="broken.py", impl="", valid=False, reason="no class MySocket, in line 3"),
        ReportCard(submission="short.py", impl="sandbox", results=[result("peer-reset", gv.REPORTED)]),
    ]


FOLDERS = ["careful", "sloppy", "broken", "short"]


def table() -> list[summary.Row]:
    return summary.rows(class_cards(), FOLDERS)


def test_rows_hold_each_card_verdict_cells_and_counts() -> None:
    got = table()
    assert [r.verdict for r in got] == ["passed", "failed", "invalid", "passed"]
    assert got[1] == summary.Row(submission="sloppy.py", folder="sloppy", verdict="failed",
                                 cells={"clean-close": "survived", "peer-reset": "returned corrupt data",
                                        "black-hole": "hung"}, good=1, graded=3, reason="")
    assert got[2] == summary.Row(submission="broken.py", folder="broken", verdict="invalid", cells={}, good=0,
                                 graded=0, reason="no class MySocket, in line 3")
    assert got[3].cells == {"peer-reset": "reported correctly"} and (got[3].good, got[3].graded) == (1, 1)


def test_rows_want_one_folder_per_card() -> None:
    with pytest.raises(ValueError, match="4 cards but 3 folders"):
        summary.rows(class_cards(), FOLDERS[:3])


def test_scenarios_are_the_union_in_first_seen_order() -> None:
    assert summary.scenarios(class_cards()) == SCENARIOS
    later = ReportCard(submission="x.py", impl="sandbox", results=[result("refused", gv.SURVIVED),
                                                                    result("clean-close", gv.SURVIVED)])
    assert summary.scenarios([class_cards()[3], later]) == ["peer-reset", "refused", "clean-close"]
    assert summary.scenarios([]) == []


def test_csv_is_exact_with_empty_absent_cells_and_a_total_row() -> None:
    text = summary.render_csv(table(), SCENARIOS)
    assert list(csv.reader(io.StringIO(text))) == [
        ["submission", "verdict", "good", "graded", "clean-close", "peer-reset", "black-hole", "reason"],
        ["careful.py", "passed", "3", "3", "survived", "reported correctly", "reported correctly", ""],
        ["sloppy.py", "failed", "1", "3", "survived", "returned corrupt data", "hung", ""],
        ["broken.py", "invalid", "0", "0", "", "", "", "no class MySocket, in line 3"],
        ["short.py", "passed", "1", "1", "", "reported correctly", "", ""],
        # Each scenario counted over the submissions graded there; good and graded summed.
        ["TOTAL", "2 of 4 passed", "5", "7", "2 of 2 good", "2 of 3 good", "1 of 2 good", ""],
    ]
    # The reason's comma is quoted by the csv module, so the line still has eight fields.
    assert text.splitlines()[3] == 'broken.py,invalid,0,0,,,,"no class MySocket, in line 3"'


def test_csv_quotes_commas_and_quotes_in_paths() -> None:
    card = ReportCard(submission='a,b "c".py', impl="sandbox", results=[result("clean-close", gv.SURVIVED)])
    text = summary.render_csv(summary.rows([card], ["a,b"]), ["clean-close"])
    assert text.splitlines()[1] == '"a,b ""c"".py",passed,1,1,survived,'
    assert list(csv.reader(io.StringIO(text)))[1][0] == 'a,b "c".py'


@pytest.mark.parametrize("name", ["=cmd.py", "+1.py", "-x.py", "@SUM(A1).py", "\tx.py"])
def test_csv_keeps_a_cell_from_starting_a_formula(name: str) -> None:
    invalid = ReportCard(submission=name, impl="", valid=False, reason="=HYPERLINK(\"http://x\")")
    parsed = list(csv.reader(io.StringIO(summary.render_csv(summary.rows([invalid], ["f"]), []))))
    assert parsed[1] == ["'" + name, "invalid", "0", "0", "'=HYPERLINK(\"http://x\")"]
    # Only the first character matters: an "=" inside a name is left alone.
    inside = ReportCard(submission="a=b.py", impl="", valid=False, reason="r")
    assert list(csv.reader(io.StringIO(summary.render_csv(summary.rows([inside], ["f"]), []))))[1][0] == "a=b.py"


def test_markdown_has_the_heading_the_count_and_the_table() -> None:
    lines = summary.render_markdown(table(), SCENARIOS).splitlines()
    assert lines[:6] == [
        "# Class summary", "", "2 of 4 submissions passed; 1 invalid", "",
        "| submission | verdict | good | graded | clean-close | peer-reset | black-hole | reason |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    assert lines[6:] == [
        "| [careful.py](careful/report.md) | passed | 3 | 3 | survived | reported correctly | reported correctly |  |",
        "| [sloppy.py](sloppy/report.md) | **failed** | 1 | 3 | survived | **returned corrupt data** | **hung** |  |",
        "| [broken.py](broken/report.md) | **invalid** | 0 | 0 | - | - | - | no class MySocket, in line 3 |",
        "| [short.py](short/report.md) | passed | 1 | 1 | - | reported correctly | - |  |",
        "| **TOTAL** | 2 of 4 passed | 5 | 7 | 2 of 2 good | 2 of 3 good | 1 of 2 good |  |"]


def test_markdown_escapes_pipes_newlines_and_link_syntax() -> None:
    card = ReportCard(submission="a|b [x](y).py", impl="", valid=False, reason="line 1 | bad\nline 2")
    lines = summary.render_markdown(summary.rows([card], ["my dir(1)"]), []).splitlines()
    # Every | in a text is escaped, so the row keeps its columns; the link's target is URL-quoted.
    assert lines[6] == r"| [a\|b \[x\](y).py](my%20dir%281%29/report.md) | **invalid** | 0 | 0 | line 1 \| bad line 2 |"
    assert lines[6].replace("\\|", "").count("|") == 6


def test_html_is_one_page_with_coloured_cells_links_and_totals() -> None:
    page = summary.render_html(table(), SCENARIOS)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # Nothing fetched and nothing run: no scripts, stylesheets, images or absolute links.
    for banned in ("<script", "<link", "<img", "src=", "http://", "https://", "@import"):
        assert banned not in page
    assert "font-size: 14px" in page and "font-size: 16px" in page
    assert "<p class=\"fail\">2 of 4 submissions passed; 1 invalid</p>" in page
    assert ('<tr><td><a href="sloppy/report.md">sloppy.py</a></td><td class="fail">failed</td><td>1</td><td>3</td>'
            '<td class="ok">survived</td><td class="fail">returned corrupt data</td><td class="fail">hung</td>'
            '<td></td></tr>') in page
    assert ('<tr><td><a href="short/report.md">short.py</a></td><td class="ok">passed</td><td>1</td><td>1</td>'
            '<td class="none">-</td><td class="ok">reported correctly</td><td class="none">-</td>'
            '<td></td></tr>') in page
    assert ('<tr class="total"><td>TOTAL</td><td>2 of 4 passed</td><td>5</td><td>7</td><td>2 of 2 good</td>'
            '<td>2 of 3 good</td><td>1 of 2 good</td><td></td></tr>') in page
    assert "<td>no class MySocket, in line 3</td>" in page


def test_html_escapes_every_text_and_quotes_the_link() -> None:
    card = ReportCard(submission="<script>x</script>.py", impl="", valid=False, reason='"><b>bold</b>')
    page = summary.render_html(summary.rows([card], ['<script>x</script> "q"']), [])
    assert "<script>" not in page and "<b>" not in page
    assert ('<a href="%3Cscript%3Ex%3C/script%3E%20%22q%22/report.md">&lt;script&gt;x&lt;/script&gt;.py</a>'
            in page)
    assert "<td>&quot;&gt;&lt;b&gt;bold&lt;/b&gt;</td>" in page
    # A folder cannot turn the relative link into another scheme: its ":" is quoted too.
    other = summary.render_html(summary.rows([card], ["javascript:alert(1)"]), [])
    assert 'href="javascript%3Aalert%281%29/report.md"' in other


def test_an_empty_class_renders_zero_counts() -> None:
    assert list(csv.reader(io.StringIO(summary.render_csv([], [])))) == [
        ["submission", "verdict", "good", "graded", "reason"], ["TOTAL", "0 of 0 passed", "0", "0", ""]]
    assert "0 of 0 submissions passed; 0 invalid" in summary.render_markdown([], [])
