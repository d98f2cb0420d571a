"""Checking a submission on the host without running it: read, parse, compile, inspect the tree.

Nothing in the file is executed here (``ast.parse`` and ``compile`` only), so a
file that would hang, crash or misbehave at import is still checked in a
millisecond. What is checked is the contract of docs/grading.md:

- a ``.py`` file of at most 256 KiB that parses and compiles (a syntax error is
  reported with its line);
- imports from the standard library only;
- a module-level ``FRAMING`` of ``"fixed"`` (with an integer ``MSGLEN``, 13 or
  more) or ``"length-prefixed"``; or, as the HOWTO's class is written, an
  ``MSGLEN`` and no ``FRAMING``, which is read as ``"fixed"`` with a note saying so;
- a module-level class ``MySocket`` that can be built as ``MySocket()`` and has
  ``connect(host, port)``, ``mysend(msg)``, ``myreceive()``, optionally ``close()``.

Methods inherited from another class in the same file count; a base class from
elsewhere (say ``socket.socket``) cannot be seen into, so then only the methods
the file shows are checked, and the lab finds any that are missing::

    info = check_file(Path("mine.py"))      # SubmissionInfo, or raises InvalidSubmission
    info.framing, info.msglen, info.notes
"""

from __future__ import annotations

import ast
import dataclasses
import operator
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.inlab import submission
from lab.toolerrors import UsageError

MAX_BYTES = 256 * 1024
_FOLD: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub,
                                                ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
                                                ast.LShift: operator.lshift}


_REQUIRED_SHOWN = ", ".join(f"{name}({', '.join(params)})" for name, params in submission.REQUIRED_METHODS.items())


class InvalidSubmission(UsageError):
    """The file breaks the contract; the message says where, what, and what is accepted."""


@dataclasses.dataclass(frozen=True)
class SubmissionInfo:
    path: Path
    source: bytes
    framing: str
    msglen: int | None
    has_close: bool
    notes: tuple[str, ...] = ()     # what the report card should say about how the file was read


def check_file(path: Path | str) -> SubmissionInfo:
    """Check a submission file without executing it; raises InvalidSubmission saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise InvalidSubmission(f"{path}: no such file")
    if not path.is_file():
        raise InvalidSubmission(f"{path}: not a regular file; a submission is one Python file")
    if path.suffix != ".py":
        raise InvalidSubmission(f"{path}: a submission is a Python file whose name ends in .py")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InvalidSubmission(f"{path}: {size} bytes; a submission is at most {MAX_BYTES} bytes")
    return check_source(path.read_bytes(), path)


def check_source(source: bytes, path: Path) -> SubmissionInfo:
    where = path.name
    try:
        tree = ast.parse(source, filename=str(path))
        # compile() finds what the parser lets through ('return' outside a function, ...); it runs nothing.
        compile(tree, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise InvalidSubmission(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # null bytes, undecodable source
        raise InvalidSubmission(f"{where}: not readable Python source: {exc}") from None
    _check_imports(tree, where)
    try:
        # The same rule as the in-lab loader's: MSGLEN without FRAMING is fixed-length, with a note.
        constants = submission.read_constants(_module_constants(tree, where), where)
    except submission.SubmissionError as exc:
        raise InvalidSubmission(str(exc)) from None
    methods = _class_methods(tree, where)
    has_close = _check_methods(methods, where)
    return SubmissionInfo(path=path, source=source, framing=constants.framing, msglen=constants.msglen,
                          has_close=has_close, notes=(constants.note,) if constants.note else ())


def _check_imports(tree: ast.Module, where: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise InvalidSubmission(f"{where}: line {node.lineno}: relative import; a submission is one file "
                                    "and may import the standard library only")
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names:
                raise InvalidSubmission(f"{where}: line {node.lineno}: imports {name!r}, which is not in the "
                                        "standard library; submissions may import the standard library only")


def _const(node: ast.expr) -> Any:
    """A literal, or integer arithmetic on literals (MSGLEN = 1000 + 24); anything else is refused."""
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD:
        left, right = _const(node.left), _const(node.right)
        if isinstance(left, int) and isinstance(right, int):
            return _FOLD[type(node.op)](left, right)
        raise ValueError("arithmetic on integers only")
    return ast.literal_eval(node)


def _module_constants(tree: ast.Module, where: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("FRAMING", "MSGLEN"):
                try:
                    found[target.id] = _const(node.value)  # type: ignore[union-attr]
                except (ValueError, TypeError, SyntaxError, RecursionError):
                    raise InvalidSubmission(f"{where}: line {node.lineno}: {target.id} must be a literal "
                                            f"({'a string' if target.id == 'FRAMING' else 'an integer'}), "
                                            "so it can be read without running the file") from None
    return found


@dataclasses.dataclass
class _Methods:
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None]   # None: assigned, not def'd
    opaque: bool                                                      # a base class we cannot see into


def _class_methods(tree: ast.Module, where: str) -> _Methods:
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if submission.CLASS_NAME not in classes:
        raise InvalidSubmission(f"{where}: no module-level class {submission.CLASS_NAME}; a submission defines "
                                f"class {submission.CLASS_NAME} with connect(host, port), mysend(msg), "
                                "myreceive() and optionally close()")
    methods = _Methods({}, False)
    seen: set[str] = set()

    def collect(cls: ast.ClassDef) -> None:
        seen.add(cls.name)
        for item in cls.body:   # the class's own definitions win over its bases'
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                methods.defs.setdefault(item.name, item)
            elif isinstance(item, ast.Assign):
                for target in item.targets:
                    if isinstance(target, ast.Name):
                        methods.defs.setdefault(target.id, None)
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id == "object":
                continue
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                collect(classes[base.id])
            else:
                methods.opaque = True

    collect(classes[submission.CLASS_NAME])
    return methods


def _check_methods(methods: _Methods, where: str) -> bool:
    wanted = {"__init__": (), **submission.REQUIRED_METHODS}
    for name, params in wanted.items():
        node = methods.defs.get(name)
        shown = f"{name}({', '.join(('self', *params))})"
        if name not in methods.defs:
            if name != "__init__" and not methods.opaque:
                raise InvalidSubmission(f"{where}: {submission.CLASS_NAME} has no method {shown}; required: "
                                        f"{_REQUIRED_SHOWN}, optionally close()")
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            raise InvalidSubmission(f"{where}: line {node.lineno}: {submission.CLASS_NAME}.{name} is 'async def'; "
                                    "the lab calls it as a plain blocking method")
        if node is not None and not node.decorator_list:
            problem = _cannot_take(node.args, 1 + len(params))
            if problem:
                call = f"{submission.CLASS_NAME}()" if name == "__init__" else shown
                raise InvalidSubmission(f"{where}: line {node.lineno}: {submission.CLASS_NAME}.{name} cannot be "
                                        f"called as {call}: {problem}")
    close = methods.defs.get("close")
    if isinstance(close, ast.FunctionDef) and not close.decorator_list:
        problem = _cannot_take(close.args, 1)
        if problem:
            raise InvalidSubmission(f"{where}: line {close.lineno}: {submission.CLASS_NAME}.close cannot be called "
                                    f"as close(self): {problem}")
    return "close" in methods.defs


def _cannot_take(args: ast.arguments, count: int) -> str | None:
    """Why a function with these parameters cannot be called with ``count`` positional arguments (self too)."""
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    if count < required:
        names = ", ".join(a.arg for a in positional[count:required])
        return f"it also requires {names} (give it a default, as in sock=None)"
    if count > len(positional) and args.vararg is None:
        return f"it takes {len(positional)} positional parameters (self included), the lab passes {count}"
    missing = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if missing:
        return f"it requires keyword-only {', '.join(missing)}"
    return None


__all__ = ["InvalidSubmission", "SubmissionInfo", "check_file", "check_source", "MAX_BYTES"]
