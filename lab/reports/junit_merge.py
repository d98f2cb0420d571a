"""Several JUnit XML files, one per CI shard, as the one file a CI page reads. ::

    python -m lab.reports.junit_merge results/pytest-junit.xml shard-1.xml shard-2.xml shard-3.xml

The inputs are what ``pytest --junitxml`` writes (a ``<testsuites>`` root holding ``<testsuite>``
elements) or a bare ``<testsuite>`` root. The output is one ``<testsuites>`` root that holds every
input's ``<testsuite>`` unchanged (name, hostname, timestamp, cases and their output), with
``tests``/``failures``/``errors``/``skipped``/``time`` the sums over them.

The shards of a run must cover the suite exactly once, so a test case (classname and name) found
in two inputs is an error naming it and both files: it means two jobs ran the same test, and a
merged count would claim a test more than there is. A missing, unreadable or malformed input is
an error naming that file; nothing is written then.

Standard library only (the CI job that merges installs nothing) and nothing of ``lab`` beyond
its standard-library-only package file: tests/unit/test_junit_merge.py runs it in an interpreter
without site-packages. The inputs are the run's own files, not a stranger's, so the standard
parser (which expat guards against entity-expansion bombs) is enough.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

__all__ = ["parse", "load", "merge", "render", "main", "USAGE"]

USAGE = "usage: python -m lab.reports.junit_merge OUT IN [IN...]"
_COUNTS = ("tests", "failures", "errors", "skipped")
# What a count attribute counts when a suite leaves it out: its cases with this child (None: every case).
_COUNTED_CHILD = {"tests": None, "failures": "failure", "errors": "error", "skipped": "skipped"}


def parse(data: str | bytes, source: str) -> list[ET.Element]:
    """The ``<testsuite>`` elements of one JUnit document; ``source`` names it in errors."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"{source}: not well-formed XML ({error})") from None
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites":
        return root.findall("testsuite")
    raise ValueError(f"{source}: the root element is <{root.tag}>; a JUnit file's root is "
                     "<testsuites> (as pytest --junitxml writes it) or <testsuite>")


def load(path: str | Path) -> list[ET.Element]:
    """:func:`parse` of the file at ``path``."""
    try:
        # Bytes, so that the parser follows the file's own XML declaration for its encoding.
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    return parse(data, str(path))


def _count(suite: ET.Element, attribute: str, source: str) -> int:
    value = suite.get(attribute)
    if value is None:
        child = _COUNTED_CHILD[attribute]
        return sum(1 for case in suite.iter("testcase") if child is None or case.find(child) is not None)
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{source}: testsuite {suite.get('name', '?')!r} has {attribute}={value!r}; "
                         "a count is a whole number >= 0")
    return number


def _seconds(suite: ET.Element, source: str) -> float:
    value = suite.get("time", "0")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{source}: testsuite {suite.get('name', '?')!r} has time={value!r}; "
                         "a time is a number of seconds") from None


def merge(documents: Sequence[tuple[str, list[ET.Element]]]) -> ET.Element:
    """One ``<testsuites>`` root over ``documents``: (source, its suites) pairs, as :func:`load` gives them."""
    first_seen: dict[tuple[str, str], int] = {}
    totals = dict.fromkeys(_COUNTS, 0)
    seconds = 0.0
    root = ET.Element("testsuites")
    for index, (source, suites) in enumerate(documents):
        for suite in suites:
            for case in suite.iter("testcase"):
                key = (case.get("classname", ""), case.get("name", ""))
                seen_in = first_seen.setdefault(key, index)
                # Only across documents is a repeat two shards running one test; within one it is what
                # that run recorded, and kept. By position, not name: the same file given twice overlaps too.
                if seen_in != index:
                    earlier = documents[seen_in][0]
                    where = (f"{source} given twice" if earlier == source else f"both {earlier} and {source}")
                    raise ValueError(f"test case {key[0]}::{key[1]} is in {where}; "
                                     "each test belongs in exactly one shard's file")
            for attribute in _COUNTS:
                totals[attribute] += _count(suite, attribute, source)
            seconds += _seconds(suite, source)
            root.append(suite)
    root.attrib.update({attribute: str(total) for attribute, total in totals.items()})
    root.set("time", f"{seconds:.3f}")
    return root


def render(root: ET.Element) -> str:
    """The document's text, with its XML declaration.

    Not re-indented: indenting would add whitespace inside the inputs' elements, whose text (a
    failure's traceback, captured output) is kept exactly as the shard wrote it.
    """
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``OUT IN [IN...]``: exit 0 when OUT is written; 2, with the reason on stderr, when nothing is."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(args) < 2:
        print(f"junit_merge: give the output file and at least one input file\n{USAGE}", file=sys.stderr)
        return 2
    out, *inputs = args
    try:
        root = merge([(path, load(path)) for path in inputs])
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(root), encoding="utf-8")
    except ValueError as error:
        print(f"junit_merge: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"junit_merge: {out}: cannot be written ({error.strerror or error})", file=sys.stderr)
        return 2
    counts = ", ".join(f"{root.get(attribute)} {attribute}" for attribute in _COUNTS)
    files = f"{len(inputs)} file" + ("" if len(inputs) == 1 else "s")
    print(f"junit_merge: wrote {out} from {files}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
