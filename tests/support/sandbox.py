"""Running the sandbox's adapter as a real subprocess for a test, as the launcher would (no container).

    with adapters() as start:
        proc, channel = start(EXAMPLES / "careful.py")        # stdin = stdout = one end of a socketpair
        channel.sendall(b'{"op":"hello","protocol":1}\\n')

Every process started is killed (and reaped) when the block ends; waits have deadlines.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "submissions"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


def adapter_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MY_SERVER_ADDRESS"}   # raises_at_import.py reads it
    env["PYTHONPATH"] = str(ROOT)
    return env


def adapter_argv(path: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "lab.sandbox.adapter", str(path), *options]


Start = Callable[..., "tuple[subprocess.Popen[bytes], socket.socket]"]


@contextlib.contextmanager
def adapters() -> Iterator[Start]:
    """start(path, *options) -> (process, our end of the channel); everything is cleaned up afterwards."""
    started: list[tuple[subprocess.Popen[bytes], socket.socket]] = []

    def start(path: Path, *options: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
        ours, theirs = socket.socketpair()
        with theirs:
            proc = subprocess.Popen(adapter_argv(path, *options), stdin=theirs, stdout=theirs,
                                    stderr=subprocess.PIPE, cwd=ROOT, env=adapter_env())
        started.append((proc, ours))
        return proc, ours

    try:
        yield start
    finally:
        for proc, ours in started:
            ours.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()
