"""The host's side of the sandbox: one short-lived container per scenario run, where graded code runs.

A plain context manager over a running :class:`~lab.host.topology.Lab` (its compose project,
its command runner), so its logic is unit-tested with a fake runner and no Docker::

    with Sandbox(lab, Path("mine.py"), "python") as box:     # or (Path("./a.out"), "executable")
        box.impl                                            # "sandbox:mine_1a2b3c4d", for the runner
        ...                                                 # the judge dials 127.0.0.1:7900 in the client
        print(box.logs())                                   # the launcher's and the children's stderr

On enter it copies the program into a fresh temporary folder (read-only, world-readable: the
container's user is uid 10003), starts the compose service ``sandbox`` detached with that
folder mounted read-only at /submission, and waits until the launcher says it listens. On exit
(always: also on an exception or Ctrl-C) it keeps the logs' tail, removes the container with
``docker rm -f`` (which ends every process the submission started, daemons included), checks
that it is gone, and removes the folder.

A container left by a crash carries the project's label and the lab's, so ``lab down``
(:meth:`Lab.down <lab.host.topology.Lab.down>`) and :func:`~lab.host.topology.sweep` remove it.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from lab.addresses import DRIVER_HOST, DRIVER_PORT
from lab.host.engine import EngineError
from lab.host.topology import Lab

Kind = Literal["python", "executable"]
KINDS: tuple[Kind, ...] = ("python", "executable")
SERVICE = "sandbox"
PROFILE = "sandbox"
MOUNT = "/submission"
LISTENING = f"launcher: listening on {DRIVER_HOST}:{DRIVER_PORT}"
READY_TIMEOUT = 15.0             # the launcher listens within about a second of the container starting
GONE_TIMEOUT = 15.0
POLL = 0.1
LOG_LINES = 200                  # .logs(): at most this many lines...
LOG_CHARS = 64 * 1024            # ...and this many characters, the newest
_STEM_RE = re.compile(r"[^A-Za-z0-9_]")


def safe_stem(text: str) -> str:
    """A file-name stem that is a Python identifier and harmless in a path: [A-Za-z0-9_], at most 32."""
    stem = _STEM_RE.sub("_", text)[:32].strip("_")
    if not stem or stem[0].isdigit():
        stem = f"s_{stem}" if stem else "submission"
    return stem


class Sandbox:
    """One sandbox container for one scenario run; see the module's docstring."""

    def __init__(self, lab: Lab, program: Path, kind: Kind, *, name: str | None = None,
                 ready_timeout: float = READY_TIMEOUT, gone_timeout: float = GONE_TIMEOUT) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        self.lab = lab
        self.program = Path(program)
        self.kind: Kind = kind
        self.hex = secrets.token_hex(4)
        self.name = f"{safe_stem(name if name is not None else self.program.stem)}_{self.hex}"
        self.container = f"{lab.project}-sandbox-{self.hex}"
        self.ready_timeout = ready_timeout
        self.gone_timeout = gone_timeout
        self.folder: Path | None = None
        self._logs: str | None = None   # the tail kept at exit, once the container is gone
        self._started = False

    def __repr__(self) -> str:
        return f"Sandbox({self.container!r}, {self.impl!r})"

    @property
    def impl(self) -> str:
        return f"sandbox:{self.name}"

    @property
    def filename(self) -> str:
        return f"{self.name}.py" if self.kind == "python" else self.name

    def command(self) -> list[str]:
        """The launcher's CMD: what starts once per driver connection, inside the container."""
        if self.kind == "python":
            return ["python3", "-m", "lab.sandbox.adapter", f"{MOUNT}/{self.filename}"]
        return [f"{MOUNT}/{self.filename}"]

    def run_args(self) -> list[str]:
        """The ``docker compose`` arguments (after ``-p PROJECT``) that start the container."""
        assert self.folder is not None
        return ["--profile", PROFILE, "run", "-d", "--rm", "--no-deps", "--name", self.container,
                "-v", f"{self.folder}:{MOUNT}:ro", SERVICE,
                "python3", "-m", "lab.sandbox.launcher", "--listen", f"{DRIVER_HOST}:{DRIVER_PORT}", "--",
                *self.command()]

    # Enter and exit -------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        if not self.program.is_file():
            raise FileNotFoundError(f"no program at {self.program}")
        try:
            self._stage()
            self._started = True  # from here on a container may exist, even if `run` fails half-way
            self.lab.compose(*self.run_args(), timeout=120)
            self._wait_listening()
        except BaseException:
            self._cleanup(raising=False)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._cleanup(raising=exc_type is None)

    def _stage(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"lab-sandbox-{self.hex}-"))
        target = self.folder / self.filename
        shutil.copyfile(self.program, target)
        # The container's user (uid 10003) is no one on the host: it reads through "other".
        target.chmod(0o555 if self.kind == "executable" else 0o444)
        self.folder.chmod(0o755)

    def _wait_listening(self) -> None:
        runner = self.lab.runner
        deadline = runner.monotonic() + self.ready_timeout
        while True:
            res = runner.run(["docker", "logs", "--tail", str(LOG_LINES), self.container], timeout=30)
            if LISTENING in res.stderr or LISTENING in res.stdout:
                return
            if not res.ok and "No such container" in res.stderr:
                raise EngineError(f"sandbox {self.container} ended before its launcher listened "
                                  f"(it is started with --rm, so its logs are gone): {res.stderr.strip()[-500:]}")
            if runner.monotonic() >= deadline:
                raise EngineError(f"sandbox {self.container}: no {LISTENING!r} within {self.ready_timeout:g} s; "
                                  f"its logs:\n{_tail(res.stdout + res.stderr)}")
            runner.sleep(POLL)

    def _cleanup(self, *, raising: bool) -> None:
        problems = []
        try:
            if self._started:
                self._started = False
                try:
                    self._logs = self._fetch_logs()
                finally:
                    problems += self._remove()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None
        if problems and raising:
            raise EngineError("; ".join(problems))

    def _remove(self) -> list[str]:
        runner = self.lab.runner
        res = runner.run(["docker", "rm", "-f", self.container], timeout=60)
        if not res.ok and "No such container" not in res.stderr:
            return [f"docker rm -f {self.container} failed (exit {res.returncode}): {res.stderr.strip()}"]
        deadline = runner.monotonic() + self.gone_timeout
        while True:
            left = runner.run(["docker", "ps", "-a", "-q", "--filter", f"name=^/{self.container}$"], timeout=30)
            if left.ok and not left.stdout.strip():
                return []
            if runner.monotonic() >= deadline:
                return [f"sandbox {self.container} still exists {self.gone_timeout:g} s after docker rm -f"]
            runner.sleep(POLL)

    # Diagnostics ----------------------------------------------------------------
    def _fetch_logs(self) -> str:
        res = self.lab.runner.run(["docker", "logs", "--tail", str(LOG_LINES), self.container], timeout=30)
        # The launcher writes to stderr; stdout is included in case a CMD misbehaves before it is wired.
        return _tail(res.stderr + res.stdout) if res.ok else ""

    def logs(self) -> str:
        """The newest part of the container's output (at most LOG_LINES lines, LOG_CHARS characters)."""
        if self._started:
            return self._fetch_logs()
        return self._logs or ""


def _tail(text: str) -> str:
    lines = text.splitlines()[-LOG_LINES:]
    return "\n".join(lines)[-LOG_CHARS:]
