"""Every proof says what it measured: no ctx.prove(...) in a scenario or a fault without a detail.

A proof is printed as "name: detail" in every rendering of a run; an empty detail leaves the
reader with a claim and no number behind it. The renderings print "(no detail given)" for one
that slipped through (lab.inlab.timeline.detail_of); this test keeps them from slipping through
in the first place, by reading the files (ast): a call to ``.prove(name, ok, detail)`` must pass
a detail, and a literal one must not be empty.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lab.inlab.timeline import NO_DETAIL, detail_of

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "lab" / "scenarios").glob("*.py"), *(ROOT / "lab" / "inlab" / "faults").glob("*.py")])


def prove_calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "prove"]


def missing_detail(call: ast.Call) -> str | None:
    """Why this call's detail is missing or empty, or None when it has one."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None   # *args / **kwargs: not decidable here; the rendering still shows NO_DETAIL
    keyword = next((k.value for k in call.keywords if k.arg == "detail"), None)
    detail = call.args[2] if len(call.args) > 2 else keyword
    if detail is None:
        return "no detail argument"
    if isinstance(detail, ast.Constant) and isinstance(detail.value, str) and not detail.value.strip():
        return f"an empty literal detail {detail.value!r}"
    if isinstance(detail, ast.JoinedStr) and not any(
            isinstance(v, ast.FormattedValue) or (isinstance(v, ast.Constant) and str(v.value).strip())
            for v in detail.values):
        return "an empty f-string detail"
    return None


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_proof_in_the_file_passes_a_detail(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = [f"{path.relative_to(ROOT)}:{call.lineno}: {why}: {ast.unparse(call)[:100]}"
                for call in prove_calls(tree) if (why := missing_detail(call))]
    assert not problems, "proofs must say what they measured:\n" + "\n".join(problems)


def test_the_walk_finds_the_proofs_and_catches_what_it_should() -> None:
    # The test above is only as good as its walk: it sees the scenarios' proofs at all ...
    assert sum(len(prove_calls(ast.parse(p.read_text(encoding="utf-8")))) for p in FILES) >= 20
    # ... and tells a missing or empty detail from a real one.
    calls = prove_calls(ast.parse(
        "ctx.prove('a', ok)\nctx.prove('b', ok, '')\nctx.prove('c', ok, detail=' ')\nctx.prove('d', ok, f'')\n"
        "ctx.prove('e', ok, f'{n} bytes')\nctx.prove('f', ok, detail=text)\nself.ctx.prove('g', ok, 'pid 7')\n"))
    assert [missing_detail(c) for c in calls] == [
        "no detail argument", "an empty literal detail ''", "an empty literal detail ' '", "an empty f-string detail",
        None, None, None]


def test_an_empty_detail_is_never_printed_empty() -> None:
    assert detail_of({"name": "x", "ok": True, "detail": ""}) == NO_DETAIL
    assert detail_of({"name": "x", "ok": True}) == NO_DETAIL
    assert detail_of({"name": "x", "ok": True, "detail": "  3 RST  "}) == "3 RST"
