"""The README's scenario and fault sections are exactly what the scenario and fault files say; its exit codes are the CLI's."""

from __future__ import annotations

from lab.reports import readme as docs

from lab.inlab import faults

from lab.inlab import scenario


def test_readme_sections_are_up_to_date() -> None:
    current = (docs.ROOT / "README.md").read_text()
    assert docs.render_readme(current) == current, "README.md is out of date: run `python -m lab.reports.readme`"


def test_every_scenario_and_fault_has_its_section() -> None:
    text = (docs.ROOT / "README.md").read_text()
    for name in scenario.discover():
        assert f"\n### {name}\n" in text
    for name in faults.names():
        assert f"\n### fault: {name}\n" in text


def test_every_fault_file_opens_with_its_wire_behaviour() -> None:
    import sys
    from pathlib import Path

    for name in faults.names():
        path = Path(sys.modules[faults.get(name).__module__].__file__ or "")
        assert len(docs._opening_comment(path)) > 60, f"{path.name} needs an opening comment on its wire behaviour"


def _exit_codes(text: str, start: str, end: str | None) -> dict[int, str]:
    """``N word ...`` pairs of an exit-code list, from ``start`` up to ``end`` (None: the text's end): each
    code and its first word."""
    import re

    part = text[text.index(start):]
    part = " ".join(part[:part.index(end) if end else None].split())
    return {int(code): word for code, word in re.findall(r"\b(\d+) (?:an? |the )?(\w+)", part)}


def test_the_exit_codes_are_the_same_in_the_help_the_module_and_the_readme() -> None:
    from lab import toolerrors
    from lab.host import cli

    readme = _exit_codes((docs.ROOT / "README.md").read_text(), "Exit codes:", "The codes come from")
    helptext = _exit_codes(cli.cli.help or "", "Exit codes:", None)
    module = _exit_codes(cli.__doc__ or "", "Exit codes:", "They come from")
    codes = {toolerrors.EXIT_OK, toolerrors.EXIT_CHECK_FAILED, toolerrors.EXIT_USAGE, toolerrors.EXIT_SETUP,
             toolerrors.EXIT_INTERNAL, toolerrors.EXIT_INTERRUPTED}
    assert set(readme) == set(helptext) == set(module) == codes == {0, 1, 2, 3, 70, 130}
    assert readme[130] == helptext[130] == module[130] == "interrupted"


def test_every_plain_compose_example_names_its_project() -> None:
    import re

    text = (docs.ROOT / "README.md").read_text()
    examples = [line for line in text.splitlines() if re.match(r"^(\w+=\S+ )*docker compose ", line)]
    assert len(examples) > 8   # the "Using the lab directly" block and one per scenario
    assert [line for line in examples if " docker compose -p " not in f" {line}"] == []


def test_a_timed_completion_shows_its_bound_in_the_scenario_sections() -> None:
    from lab.inlab.scenario import Expect
    from lab.reports.readme import _expect_line

    assert _expect_line("robust", Expect("completed", within=6.0, note="why")) == (
        "- **robust** completes with every reply intact, within 6 s of the fault — why")
    assert _expect_line("robust", Expect("completed")) == "- **robust** completes with every reply intact"
