"""Building a Go submission on the host into the one kind of file the sandbox runs: a static x86-64 Linux ELF.

The sandbox has no Go toolchain and no C library to lean on, so a Go program is
built here, with cgo off (no libc, no dynamic loader), for linux/amd64 whatever
the host is, reproducibly (``-trimpath``, no symbol table), and offline: the
examples use the standard library only, so the module proxy is never asked and
no toolchain is downloaded. The result is checked by reading its ELF headers::

    from lab.host.build import build_go
    binary = build_go(Path("examples/submissions/go/careful"), Path("careful-go"))

Go's caches go under :func:`default_cache_dir` (or ``cache_dir``), never into a
``$HOME`` that is not set. A missing ``go``, a failed build, a build that runs
past its deadline or an output that is not a static ELF raise :class:`BuildError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lab.grading.static import NotElf, read_elf
from lab.host.engine import Result, Runner
from lab.toolerrors import SetupError

BUILD_TIMEOUT_S = 180.0
# Where Go is when it was installed from go.dev's tarball but its bin/ is not on PATH.
FALLBACK_GO = Path("/usr/local/go/bin/go")
STDERR_TAIL_LINES = 20


class BuildError(SetupError):
    """A submission could not be built: no ``go``, a failed or overlong build, or not a static ELF."""


def default_cache_dir() -> Path:
    """Go's build and module caches for the lab: under the user's cache dir, else the temp dir."""
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg) / "socket-lab" / "go"
    if home := os.environ.get("HOME"):
        return Path(home) / ".cache" / "socket-lab" / "go"
    return Path(tempfile.gettempdir()) / f"socket-lab-go-{os.getuid()}"


def find_go(runner: Runner) -> str:
    """The ``go`` command: on PATH, else go.dev's default install location; BuildError if neither."""
    found = runner.which("go")
    if found:
        return found
    if FALLBACK_GO.is_file() and os.access(FALLBACK_GO, os.X_OK):
        return str(FALLBACK_GO)
    raise BuildError(f"go not found (looked on PATH and at {FALLBACK_GO}); install Go 1.22 or newer from "
                     "https://go.dev/dl/, or submit a .py file with MySocket, or an executable built elsewhere")


def go_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a lab Go build (merged over the caller's by the runner)."""
    return {
        "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64",   # static, for the sandbox's machine
        "GOCACHE": str(cache_dir / "build"), "GOPATH": str(cache_dir / "gopath"),
        "GOMODCACHE": str(cache_dir / "gopath" / "pkg" / "mod"),
        "GOENV": "off",           # no per-user go.env (and none needed when HOME is unset)
        "GOFLAGS": "",            # the caller's flags must not change what gets built
        "GOTOOLCHAIN": "local",   # never download another toolchain because go.mod names a newer one
        "GOPROXY": "off",         # standard library only: nothing to fetch, so fetching is an error
        "GOWORK": "off", "GO111MODULE": "on",
    }


def build_go(src_dir: Path, out: Path, *, runner: Runner | None = None, go: str | None = None,
             cache_dir: Path | None = None, timeout: float = BUILD_TIMEOUT_S) -> Path:
    """Build the Go main package in ``src_dir`` (which holds its go.mod) into ``out``; return ``out``.

    Runs ``go build -trimpath -ldflags=-s -w -o OUT .`` in ``src_dir`` with cgo off,
    for linux/amd64, with a deadline of ``timeout`` seconds, then checks that ``out``
    is a static x86-64 ELF (no PT_INTERP program header).
    """
    runner = runner or Runner()
    src_dir, out = Path(src_dir).resolve(), Path(out).resolve()
    if not (src_dir / "go.mod").is_file():
        raise BuildError(f"{src_dir}: no go.mod; give the folder of a Go module whose main package is there")
    go = go or find_go(runner)
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."]
    res = runner.run(argv, timeout=timeout, env=go_env(cache_dir), cwd=src_dir)
    if not res.ok:
        raise BuildError(_failed(src_dir, res, timeout))
    try:
        elf = read_elf(out)
    except (NotElf, OSError) as exc:
        raise BuildError(f"go build in {src_dir} exited 0 but {out} is not a usable ELF: {exc}") from None
    if not elf.static or elf.machine != 62 or elf.bits != 64:
        what = f"asks for the loader {elf.interpreter}" if not elf.static else f"is for {elf.machine_name}"
        raise BuildError(f"go build in {src_dir} made {out}, which {what}; the sandbox runs static x86-64 "
                         "Linux executables only (is something overriding CGO_ENABLED=0 or the linker?)")
    return out


def _failed(src_dir: Path, res: Result, timeout: float) -> str:
    if res.returncode == 127:
        return f"go could not be started: {res.stderr.strip()}"
    if res.returncode == 124:
        return f"go build in {src_dir} did not finish within {timeout:g} s: {res.stderr.strip()}"
    lines = (res.stderr or res.stdout).strip().splitlines()
    tail = "\n".join(f"  {line}" for line in lines[-STDERR_TAIL_LINES:]) or "  (go printed nothing)"
    return f"go build in {src_dir} failed (exit {res.returncode}):\n{tail}"


__all__ = ["BUILD_TIMEOUT_S", "BuildError", "build_go", "default_cache_dir", "find_go", "go_env"]
