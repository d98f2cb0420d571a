"""Checking a submission on the host without running it: read, parse, compile, inspect the tree.

Nothing in the file is executed here (``ast.parse`` and ``compile`` only), so a
file that would hang, crash or misbehave at import is still checked in a
millisecond. What is checked is the contract of docs/grading.md:

- a ``.py`` file of at most 256 KiB that parses and compiles (a syntax error is
  reported with its line);
- imports from the standard library only;
- a module-level ``FRAMING`` of ``"fixed"`` (with an integer ``MSGLEN``, 29 or
  more) or ``"length-prefixed"``; or, as the HOWTO's class is written, an
  ``MSGLEN`` and no ``FRAMING``, which is read as ``"fixed"`` with a note saying so;
- a module-level class ``MySocket`` that can be built as ``MySocket()`` and has
  ``connect(host, port)``, ``mysend(msg)``, ``myreceive()``, optionally ``close()``.

Methods inherited from another class in the same file count; a base class from
elsewhere (say ``socket.socket``) cannot be seen into, so then only the methods
the file shows are checked, and the lab finds any that are missing::

    info = check_file(Path("mine.py"))      # SubmissionInfo, or raises InvalidSubmission
    info.framing, info.msglen, info.notes

A submission may also be any executable that speaks the driver protocol itself
(docs/grading.md, "Any language"). :func:`check_program` takes either kind: a
``.py`` file goes through :func:`check_file` unchanged; anything else must be a
regular file (not a symlink), executable by its owner, at most 64 MiB, and an
x86-64 Linux ELF (static or dynamic) or a script starting with ``#!``. Its
framing is learned at run time (the hello response), so nothing more can be
checked without running it::

    prog = check_program(Path("careful-go"))  # ProgramInfo, or raises InvalidSubmission
    prog.kind, prog.format                    # "executable", "static ELF"
"""

from __future__ import annotations

import ast
import dataclasses
import operator
import stat
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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


# --- executables ---------------------------------------------------------------------------

MAX_PROGRAM_BYTES = 64 * 1024 * 1024
_ACCEPTED = "pass an x86-64 Linux executable (ELF, or a script starting with #!), or a .py file with MySocket"

_ELF_IDENT = struct.Struct("<4sBBBB8x")          # magic, class, data, version, OS ABI
_ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF64_PHDR = struct.Struct("<IIQQQQQQ")
_ELFCLASS64, _ELFDATA2LSB = 2, 1
_ET_EXEC, _ET_DYN = 2, 3
_EM_X86_64 = 62
_PT_INTERP = 3
_LINUX_ABIS = {0: "System V", 3: "GNU/Linux"}    # what Linux runs; Go writes 0, gcc 0 or 3
_MACHINES = {3: "x86 (32-bit)", 40: "ARM", 62: "x86-64", 183: "AArch64 (arm64)", 243: "RISC-V"}
_OS_ABIS = {6: "Solaris", 9: "FreeBSD", 12: "OpenBSD"}
_SHEBANG_MAX = 256                              # the kernel reads at most this much of a #! line


class NotElf(InvalidSubmission):
    """The bytes are not a whole, readable ELF header (or not ELF at all)."""


@dataclasses.dataclass(frozen=True)
class ElfInfo:
    """What the ELF header and program headers say about an executable."""

    bits: int                       # 32 or 64
    little_endian: bool
    machine: int                    # e_machine: 62 = x86-64
    os_abi: int                     # EI_OSABI: 0 System V, 3 GNU/Linux
    elf_type: int                   # e_type: 2 ET_EXEC, 3 ET_DYN
    entry: int
    interpreter: str | None         # PT_INTERP's path; None for a static executable

    @property
    def static(self) -> bool:
        return self.interpreter is None

    @property
    def machine_name(self) -> str:
        return _MACHINES.get(self.machine, f"machine {self.machine}")


def read_elf(path: Path | str) -> ElfInfo:
    """Read an ELF file's header and program headers with ``struct``; raises NotElf if it is not one.

    Only 64-bit little-endian files are read past the identification bytes (that is
    all the sandbox runs); any other ELF comes back with ``interpreter=None`` and
    ``machine`` taken from the header, so the caller can say what it is.
    """
    with open(path, "rb") as f:
        ident = f.read(_ELF_IDENT.size)
        if len(ident) < _ELF_IDENT.size or not ident.startswith(b"\x7fELF"):
            raise NotElf("not an ELF file")
        _, klass, data, _, os_abi = _ELF_IDENT.unpack(ident)
        bits = 64 if klass == _ELFCLASS64 else 32
        little = data == _ELFDATA2LSB
        if bits != 64 or not little:
            # e_machine sits at offset 18 in both classes; its byte order is the file's.
            f.seek(18)
            raw = f.read(2)
            machine = int.from_bytes(raw, "little" if little else "big") if len(raw) == 2 else 0
            return ElfInfo(bits, little, machine, os_abi, 0, 0, None)
        f.seek(0)
        header = f.read(_ELF64_HEADER.size)
        if len(header) < _ELF64_HEADER.size:
            raise NotElf("a truncated ELF header")
        (_, e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize, e_phnum, *_) = _ELF64_HEADER.unpack(header)
        interpreter = None
        if e_phnum and e_phentsize < _ELF64_PHDR.size:
            raise NotElf(f"program header entries of {e_phentsize} bytes; ELF64 needs {_ELF64_PHDR.size}")
        for index in range(e_phnum):
            f.seek(e_phoff + index * e_phentsize)
            raw = f.read(_ELF64_PHDR.size)
            if len(raw) < _ELF64_PHDR.size:
                raise NotElf("a truncated program header table")
            p_type, _, p_offset, _, _, p_filesz, _, _ = _ELF64_PHDR.unpack(raw)
            if p_type == _PT_INTERP:
                f.seek(p_offset)
                interpreter = f.read(min(p_filesz, 4096)).split(b"\0")[0].decode(errors="replace") or "?"
    return ElfInfo(bits, little, e_machine, os_abi, e_type, e_entry, interpreter)


@dataclasses.dataclass(frozen=True)
class ProgramInfo:
    """A submission that passed the static check: a MySocket module or an executable.

    ``python`` is the module's :class:`SubmissionInfo` when ``kind == "python"``;
    ``format`` is "python", "static ELF", "dynamic ELF" or "script"; ``interpreter``
    the dynamic loader or the ``#!`` line's program; ``notes`` what the card should say.
    """

    path: Path
    kind: Literal["python", "executable"]
    format: str
    size: int
    python: SubmissionInfo | None = None
    interpreter: str | None = None
    notes: tuple[str, ...] = ()


def check_program(path: Path | str) -> ProgramInfo:
    """Check any submission without running it: a ``.py`` file as :func:`check_file`, else an executable.

    Raises InvalidSubmission saying what is wrong and what is accepted.
    """
    path = Path(path)
    if path.suffix == ".py":
        info = check_file(path)
        return ProgramInfo(path=path, kind="python", format="python", size=len(info.source), python=info,
                           notes=info.notes)
    if path.is_symlink():
        raise InvalidSubmission(f"{path}: a symbolic link; give the file itself ({_ACCEPTED})")
    if not path.exists():
        raise InvalidSubmission(f"{path}: no such file")
    if path.is_dir():
        raise InvalidSubmission(f"{path}: is a directory; {_ACCEPTED}")
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise InvalidSubmission(f"{path}: not a regular file; {_ACCEPTED}")
    if st.st_size > MAX_PROGRAM_BYTES:
        raise InvalidSubmission(f"{path}: {st.st_size} bytes; an executable submission is at most "
                                f"{MAX_PROGRAM_BYTES} bytes (64 MiB)")
    if not st.st_mode & stat.S_IXUSR:
        raise InvalidSubmission(f"{path}: not executable (chmod +x it), or pass a .py file with MySocket")
    with open(path, "rb") as f:
        head = f.read(_SHEBANG_MAX)
    if head.startswith(b"#!"):
        return _check_script(path, head, st.st_size)
    if head.startswith(b"\x7fELF"):
        return _check_elf(path, st.st_size)
    raise InvalidSubmission(f"{path}: {_what_else(head)}; {_ACCEPTED}")


def _check_script(path: Path, head: bytes, size: int) -> ProgramInfo:
    line, newline, _ = head.partition(b"\n")
    if not newline:
        raise InvalidSubmission(f"{path}: the #! line is longer than {_SHEBANG_MAX - 1} bytes or does not end; "
                                "it must be one short line such as #!/bin/sh")
    words = line[2:].decode(errors="replace").split()
    if not words or not words[0].startswith("/"):
        raise InvalidSubmission(f"{path}: the #! line must name its interpreter by absolute path "
                                "(such as #!/bin/sh or #!/usr/bin/env python3)")
    shown = " ".join(words)
    return ProgramInfo(path=path, kind="executable", format="script", size=size, interpreter=shown,
                       notes=(f"script run by {shown}: it must be installed in the sandbox",))


def _check_elf(path: Path, size: int) -> ProgramInfo:
    try:
        elf = read_elf(path)
    except NotElf as exc:
        raise InvalidSubmission(f"{path}: {exc}; {_ACCEPTED}") from None
    built_for = "build it for linux/amd64 (GOOS=linux GOARCH=amd64, or gcc on x86-64 Linux)"
    if elf.bits != 64 or not elf.little_endian or elf.machine != _EM_X86_64:
        order = "little-endian" if elf.little_endian else "big-endian"
        raise InvalidSubmission(f"{path}: an ELF for {elf.machine_name} ({elf.bits}-bit, {order}); the sandbox "
                                f"runs x86-64 Linux only: {built_for}")
    if elf.os_abi not in _LINUX_ABIS:
        system = _OS_ABIS.get(elf.os_abi, f"OS ABI {elf.os_abi}")
        raise InvalidSubmission(f"{path}: an ELF for {system}, not Linux: {built_for}")
    if elf.elf_type not in (_ET_EXEC, _ET_DYN) or elf.entry == 0:
        raise InvalidSubmission(f"{path}: an ELF object or shared library, not a program; {_ACCEPTED}")
    if elf.static:
        return ProgramInfo(path=path, kind="executable", format="static ELF", size=size)
    return ProgramInfo(path=path, kind="executable", format="dynamic ELF", size=size, interpreter=elf.interpreter,
                       notes=(f"dynamic ELF: it needs {elf.interpreter} and its libraries in the sandbox; "
                              "a static build (CGO_ENABLED=0, or gcc -static) is safer",))


def _what_else(head: bytes) -> str:
    """What a file that is neither ELF nor #! probably is, so the message can say how to fix it."""
    if not head:
        return "an empty file"
    if head.startswith(b"MZ"):
        return "a Windows executable (build it for linux/amd64)"
    if head[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "a macOS executable (build it for linux/amd64)"
    return "neither an ELF executable nor a script starting with #!"


__all__ = ["InvalidSubmission", "SubmissionInfo", "check_file", "check_source", "MAX_BYTES",
           "MAX_PROGRAM_BYTES", "ElfInfo", "NotElf", "ProgramInfo", "check_program", "read_elf"]
