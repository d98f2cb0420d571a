"""The README's scenario and fault sections are exactly what the scenario and fault files say."""

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
