"""What runs in the lab's containers imports only the standard library and itself.

The in-container part of ``lab`` is every file and folder under ``lab/`` except the host-only
ones (:data:`HOST_ONLY`); images/app/Dockerfile copies exactly that set into the image, and a
test below holds the two equal so they cannot drift. Every import in those files (``import``,
``from ... import``, also inside functions, and ``importlib.import_module("...")`` /
``__import__("...")`` with a literal name) must name a standard-library module or an
in-container module of ``lab``: never click, rich, docker, toxiproxy, requests or any other
third-party module, and never lab.host, lab.grading, lab.reports, lab.testing or lab.__main__.
"""

from __future__ import annotations

import ast
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lab"
DOCKERFILE = ROOT / "images" / "app" / "Dockerfile"

# The parts of lab/ that run on the host only (they may use click, rich, docker, toxiproxy).
HOST_ONLY = ("host", "grading", "reports", "testing", "__main__.py")
HOST_ONLY_MODULES = frozenset(name.removesuffix(".py") for name in HOST_ONLY)
# Named so the message can say why: the host side's dependencies (and what they pull in).
HOST_DEPENDENCIES = frozenset({"click", "rich", "docker", "toxiproxy", "requests"})


def in_container_entries() -> set[str]:
    """``lab/...`` paths (top-level .py files and folders) that run in the containers."""
    entries = set()
    for path in PACKAGE.iterdir():
        if path.name.startswith((".", "__pycache__")) or path.name in HOST_ONLY:
            continue
        if path.is_dir() or path.suffix == ".py":
            entries.add(f"lab/{path.name}")
    return entries


def in_container_files() -> list[Path]:
    files: list[Path] = []
    for entry in sorted(in_container_entries()):
        path = ROOT / entry
        files.extend(sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts) if path.is_dir()
                     else [path])
    return files


def dockerfile_copies(text: str) -> list[tuple[str, str]]:
    """(lab/ source, destination) for every source of every COPY line that copies from lab/."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    copies = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        if instruction.upper() != "COPY":
            continue
        rest = rest.strip()
        words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        words = [w for w in words if not w.startswith("--")]
        *sources, dest = words
        for source in sources:
            if source.startswith("lab/") or source == "lab":
                copies.append((source.rstrip("/"), dest))
    return copies


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str, str, bool]]:
    """(line, absolute module name, the import as written, whether the name may be a mere attribute)."""
    package = module if is_package else module.rpartition(".")[0]

    def absolute(name: str, level: int) -> str:
        if not level:
            return name
        base = package.split(".")
        base = base[:len(base) - (level - 1)] if level > 1 else base
        return ".".join([*base, name] if name else base)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ast.unparse(node), False
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module or "", node.level)
            yield node.lineno, base, ast.unparse(node), False
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}", ast.unparse(node), True
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            dynamic = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")
                       or isinstance(func, ast.Attribute) and func.attr == "import_module")
            arg = node.args[0]
            if dynamic and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
                level = len(name) - len(name.lstrip("."))
                yield node.lineno, absolute(name[level:], level), ast.unparse(node), False


def check_source(source: str, filename: str, module: str, *, is_package: bool = False) -> list[str]:
    """One ``file:line: import ... (why)`` line for every import an in-container file may not make."""
    problems: list[tuple[int, str]] = []
    seen = set()
    for line, name, text, maybe_attribute in _imported(ast.parse(source, filename), module, is_package):
        parts = name.split(".")
        top = parts[0]
        why = None
        if top in HOST_DEPENDENCIES:
            why = f"{top} is a host-side dependency"
        elif top == "lab":
            sub = parts[1] if len(parts) > 1 else None
            if sub in HOST_ONLY_MODULES:
                why = f"lab.{sub} is host-only"
            elif sub is not None and not maybe_attribute and f"lab/{sub}" not in _image_names():
                why = f"lab.{sub} is not copied into the image"
        elif not maybe_attribute and top not in sys.stdlib_module_names:
            why = f"{top} is not in the standard library"
        if why and (line, text, why) not in seen:
            seen.add((line, text, why))
            problems.append((line, f"{filename}:{line}: {text}  ({why})"))
    return [message for _, message in sorted(problems, key=lambda p: p[0])]


def _image_names() -> set[str]:
    """``lab/<name>`` without .py, for each in-container entry."""
    return {entry.removesuffix(".py") for entry in in_container_entries()}


def check_file(path: Path) -> list[str]:
    return check_source(path.read_text(), str(path.relative_to(ROOT)), module_name(path),
                        is_package=path.name == "__init__.py")


# --------------------------------------------------------------------------- the tests

def test_in_container_code_imports_only_the_standard_library_and_itself() -> None:
    files = in_container_files()
    assert len(files) > 20, f"found only {len(files)} in-container files; is the layout different?"
    problems = [problem for path in files for problem in check_file(path)]
    assert not problems, ("in-container code (what images/app/Dockerfile copies) may import only the standard "
                          "library and in-container lab modules:\n  " + "\n  ".join(problems))


def test_the_dockerfile_copies_exactly_the_in_container_part() -> None:
    copies = dockerfile_copies(DOCKERFILE.read_text())
    copied = {source for source, _ in copies}
    wanted = in_container_entries()
    missing, extra = sorted(wanted - copied), sorted(copied - wanted)
    assert not missing and not extra, (
        "images/app/Dockerfile's COPY lines and the in-container part of lab/ differ:"
        + (f"\n  in-container but not copied: {', '.join(missing)}" if missing else "")
        + (f"\n  copied but not in-container (host-only or gone): {', '.join(extra)}" if extra else "")
        + f"\n  (host-only, never copied: {', '.join(f'lab/{n}' for n in HOST_ONLY)})")


def test_the_dockerfile_keeps_the_package_layout() -> None:
    for source, dest in dockerfile_copies(DOCKERFILE.read_text()):
        landed = dest.rstrip("/") + "/" + Path(source).name if dest.endswith("/") else dest
        assert landed.endswith("/" + source), f"COPY {source} lands at {landed}, not at .../{source}"


def test_every_host_only_name_exists() -> None:
    for name in HOST_ONLY:
        assert (PACKAGE / name).exists(), f"HOST_ONLY names lab/{name}, which does not exist: update the list"


# --------------------------------------------------------------------------- the checker itself

def test_the_checker_reports_a_host_dependency_and_a_host_only_module() -> None:
    source = (
        "import os\n"
        "import click\n"
        "from lab.host import engine\n"
        "from lab import reports, PeerReset\n"
        "from lab.sockets import framing\n"
        "def later():\n"
        "    import rich.console\n"
        "    import importlib\n"
        "    importlib.import_module('docker')\n"
        "    __import__('lab.grading.card')\n"
        "    from ..host.cli import main\n"
        "    import yaml\n"
    )
    problems = check_source(source, "lab/inlab/fake.py", "lab.inlab.fake")
    assert problems == [
        "lab/inlab/fake.py:2: import click  (click is a host-side dependency)",
        "lab/inlab/fake.py:3: from lab.host import engine  (lab.host is host-only)",
        "lab/inlab/fake.py:4: from lab import reports, PeerReset  (lab.reports is host-only)",
        "lab/inlab/fake.py:7: import rich.console  (rich is a host-side dependency)",
        "lab/inlab/fake.py:9: importlib.import_module('docker')  (docker is a host-side dependency)",
        "lab/inlab/fake.py:10: __import__('lab.grading.card')  (lab.grading is host-only)",
        "lab/inlab/fake.py:11: from ..host.cli import main  (lab.host is host-only)",
        "lab/inlab/fake.py:12: import yaml  (yaml is not in the standard library)",
    ]


def test_the_checker_passes_clean_code() -> None:
    source = ("from __future__ import annotations\nimport socket, selectors\nfrom . import scenario\n"
              "from lab.sockets.errors import PeerReset\nfrom lab import LabError\n")
    assert check_source(source, "lab/inlab/fake.py", "lab.inlab.fake") == []


def test_the_dockerfile_parser_reads_multi_source_flagged_and_json_copies() -> None:
    text = ("FROM x\n# COPY lab/host /opt/lab/lab/host\nCOPY lab/__init__.py \\\n    lab/addresses.py /opt/lab/lab/\n"
            "COPY --chown=1:1 lab/sockets /opt/lab/lab/sockets\nCOPY [\"lab/server\", \"/opt/lab/lab/server\"]\n"
            "COPY images/app/x /x\n")
    assert dockerfile_copies(text) == [("lab/__init__.py", "/opt/lab/lab/"), ("lab/addresses.py", "/opt/lab/lab/"),
                                       ("lab/sockets", "/opt/lab/lab/sockets"),
                                       ("lab/server", "/opt/lab/lab/server")]
