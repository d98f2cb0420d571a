"""The static check for any submission: a .py file as before, or an executable (ELF or #! script).

ELF files are made here byte by byte with ``struct`` (a header and, for a
dynamic one, a PT_INTERP program header), so the cases do not depend on what
the host machine's own binaries are.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from lab.grading.static import (
    MAX_PROGRAM_BYTES, InvalidSubmission, NotElf, check_file, check_program, read_elf,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
ACCEPTED = "pass an x86-64 Linux executable (ELF, or a script starting with #!), or a .py file with MySocket"
LOADER = b"/lib64/ld-linux-x86-64.so.2"


def elf(*, klass: int = 2, data: int = 1, os_abi: int = 0, e_type: int = 2, machine: int = 62,
        entry: int = 0x401000, interpreter: bytes | None = None) -> bytes:
    """A minimal 64-bit ELF (header, and one PT_INTERP program header when ``interpreter`` is given)."""
    order = "<" if data == 1 else ">"
    phnum = 1 if interpreter else 0
    header = struct.pack(f"{order}4sBBBB8xHHIQQQIHHHHHH", b"\x7fELF", klass, data, 1, os_abi, e_type, machine, 1,
                         entry, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    if interpreter is None:
        return header
    path = interpreter + b"\0"
    return header + struct.pack(f"{order}IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(path), len(path), 1) + path


def program(tmp_path: Path, content: bytes, name: str = "prog", mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    path.chmod(mode)
    return path


def refused(path: Path) -> str:
    with pytest.raises(InvalidSubmission) as caught:
        check_program(path)
    assert caught.value.exit_code == 2
    return str(caught.value)


# --- accepted ------------------------------------------------------------------------------------------

def test_a_py_file_is_checked_as_a_mysocket_module_exactly_as_before() -> None:
    info = check_program(EXAMPLES / "careful.py")
    assert (info.kind, info.format, info.interpreter, info.notes) == ("python", "python", None, ())
    assert info.python == check_file(EXAMPLES / "careful.py")
    assert (info.python.framing, info.python.msglen) == ("length-prefixed", None)
    assert info.size == (EXAMPLES / "careful.py").stat().st_size


def test_a_py_file_keeps_its_notes_and_its_refusals() -> None:
    info = check_program(EXAMPLES / "howto_fixed.py")
    assert info.notes == check_file(EXAMPLES / "howto_fixed.py").notes
    with pytest.raises(InvalidSubmission) as caught:
        check_program(EXAMPLES / "syntax_error.py")
    with pytest.raises(InvalidSubmission) as again:
        check_file(EXAMPLES / "syntax_error.py")
    assert str(caught.value) == str(again.value)


def test_a_static_elf_is_accepted(tmp_path: Path) -> None:
    path = program(tmp_path, elf())
    info = check_program(path)
    assert (info.kind, info.format, info.interpreter, info.notes, info.python) == (
        "executable", "static ELF", None, (), None)
    assert info.size == 64


def test_a_static_pie_is_a_static_elf(tmp_path: Path) -> None:
    assert check_program(program(tmp_path, elf(e_type=3))).format == "static ELF"


def test_a_gnu_linux_abi_elf_is_accepted(tmp_path: Path) -> None:
    assert check_program(program(tmp_path, elf(os_abi=3))).format == "static ELF"


def test_a_dynamic_elf_is_accepted_with_a_note_on_its_loader(tmp_path: Path) -> None:
    info = check_program(program(tmp_path, elf(e_type=3, interpreter=LOADER)))
    assert (info.format, info.interpreter) == ("dynamic ELF", "/lib64/ld-linux-x86-64.so.2")
    assert info.notes == ("dynamic ELF: it needs /lib64/ld-linux-x86-64.so.2 and its libraries in the sandbox; a "
                          "static build (CGO_ENABLED=0, or gcc -static) is safer",)


def test_a_script_with_a_shebang_is_accepted(tmp_path: Path) -> None:
    info = check_program(program(tmp_path, b"#!/usr/bin/env  python3\nprint('hi')\n", "client"))
    assert (info.kind, info.format, info.interpreter) == ("executable", "script", "/usr/bin/env python3")
    assert info.notes == ("script run by /usr/bin/env python3: it must be installed in the sandbox",)


def test_read_elf_reads_the_interpreter_and_the_machine(tmp_path: Path) -> None:
    info = read_elf(program(tmp_path, elf(e_type=3, interpreter=LOADER)))
    assert (info.bits, info.little_endian, info.machine, info.elf_type, info.entry, info.interpreter) == (
        64, True, 62, 3, 0x401000, "/lib64/ld-linux-x86-64.so.2")
    assert (info.static, info.machine_name) == (False, "x86-64")


# --- refused: what is wrong, and what is accepted -------------------------------------------------------

def test_a_missing_file(tmp_path: Path) -> None:
    assert refused(tmp_path / "careful-go") == f"{tmp_path / 'careful-go'}: no such file"


def test_a_directory(tmp_path: Path) -> None:
    assert refused(tmp_path) == f"{tmp_path}: is a directory; {ACCEPTED}"


def test_a_symbolic_link_even_to_a_good_program(tmp_path: Path) -> None:
    target = program(tmp_path, elf())
    link = tmp_path / "link"
    link.symlink_to(target)
    assert refused(link) == f"{link}: a symbolic link; give the file itself ({ACCEPTED})"


def test_a_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert refused(fifo) == f"{fifo}: not a regular file; {ACCEPTED}"


def test_a_file_not_executable_by_its_owner(tmp_path: Path) -> None:
    path = program(tmp_path, elf(), "careful-go", mode=0o644)
    assert refused(path) == f"{path}: not executable (chmod +x it), or pass a .py file with MySocket"
    path.chmod(0o055)   # the owner's x bit is what counts, whoever else may run it
    assert refused(path) == f"{path}: not executable (chmod +x it), or pass a .py file with MySocket"


def test_a_file_over_64_mib(tmp_path: Path) -> None:
    path = program(tmp_path, elf())
    with open(path, "r+b") as f:
        f.truncate(MAX_PROGRAM_BYTES + 1)   # sparse: no 64 MiB written
    assert refused(path) == (f"{path}: {MAX_PROGRAM_BYTES + 1} bytes; an executable submission is at most "
                             "67108864 bytes (64 MiB)")


def test_exactly_64_mib_is_accepted(tmp_path: Path) -> None:
    path = program(tmp_path, elf())
    with open(path, "r+b") as f:
        f.truncate(MAX_PROGRAM_BYTES)
    assert check_program(path).size == MAX_PROGRAM_BYTES


@pytest.mark.parametrize("content, what", [
    (b"", "an empty file"),
    (b"hello, world\n", "neither an ELF executable nor a script starting with #!"),
    (b"MZ\x90\x00" + bytes(60), "a Windows executable (build it for linux/amd64)"),
    (b"\xcf\xfa\xed\xfe" + bytes(60), "a macOS executable (build it for linux/amd64)"),
])
def test_neither_elf_nor_a_script(tmp_path: Path, content: bytes, what: str) -> None:
    path = program(tmp_path, content)
    assert refused(path) == f"{path}: {what}; {ACCEPTED}"


@pytest.mark.parametrize("kwargs, what", [
    ({"machine": 183}, "an ELF for AArch64 (arm64) (64-bit, little-endian)"),
    ({"klass": 1, "machine": 3}, "an ELF for x86 (32-bit) (32-bit, little-endian)"),
    ({"data": 2, "machine": 62}, "an ELF for x86-64 (64-bit, big-endian)"),
])
def test_an_elf_for_another_machine(tmp_path: Path, kwargs: dict[str, int], what: str) -> None:
    path = program(tmp_path, elf(**kwargs))
    assert refused(path) == (f"{path}: {what}; the sandbox runs x86-64 Linux only: build it for linux/amd64 "
                             "(GOOS=linux GOARCH=amd64, or gcc on x86-64 Linux)")


def test_an_elf_for_another_system(tmp_path: Path) -> None:
    path = program(tmp_path, elf(os_abi=9))
    assert refused(path) == (f"{path}: an ELF for FreeBSD, not Linux: build it for linux/amd64 "
                             "(GOOS=linux GOARCH=amd64, or gcc on x86-64 Linux)")


@pytest.mark.parametrize("kwargs", [{"e_type": 1}, {"e_type": 3, "entry": 0}])
def test_an_object_file_or_a_shared_library(tmp_path: Path, kwargs: dict[str, int]) -> None:
    path = program(tmp_path, elf(**kwargs))
    assert refused(path) == f"{path}: an ELF object or shared library, not a program; {ACCEPTED}"


def test_a_truncated_elf(tmp_path: Path) -> None:
    path = program(tmp_path, elf()[:40])
    assert refused(path) == f"{path}: a truncated ELF header; {ACCEPTED}"
    with pytest.raises(NotElf):
        read_elf(path)


def test_a_program_header_table_past_the_end_of_the_file(tmp_path: Path) -> None:
    path = program(tmp_path, elf(interpreter=LOADER)[:64 + 20])
    assert refused(path) == f"{path}: a truncated program header table; {ACCEPTED}"


@pytest.mark.parametrize("content, what", [
    (b"#!python3\n", "the #! line must name its interpreter by absolute path (such as #!/bin/sh or "
                     "#!/usr/bin/env python3)"),
    (b"#!\n", "the #! line must name its interpreter by absolute path (such as #!/bin/sh or "
              "#!/usr/bin/env python3)"),
    (b"#!/bin/" + b"s" * 300 + b"\n", "the #! line is longer than 255 bytes or does not end; it must be one "
                                      "short line such as #!/bin/sh"),
])
def test_a_bad_shebang_line(tmp_path: Path, content: bytes, what: str) -> None:
    path = program(tmp_path, content)
    assert refused(path) == f"{path}: {what}"
