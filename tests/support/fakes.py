"""A scripted command runner for unit tests of lab.host.engine and lab.host.topology: no Docker, no sleeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.host import engine
from lab.host.engine import Result


class FakeRunner(engine.Runner):
    """Answers commands from a script keyed by argv prefix; records every call."""

    def __init__(self, answers: dict[tuple[str, ...], list[Result] | Result] | None = None, *,
                 which: set[str] = frozenset({"docker", "dockerd", "apt-get", "mmdebstrap", "go"}),
                 root: bool = True) -> None:
        self.answers = {k: (v if isinstance(v, list) else [v]) for k, v in (answers or {}).items()}
        self.calls: list[tuple[str, ...]] = []
        self.background: list[tuple[str, ...]] = []
        self.present = set(which)
        self.root = root
        self.clock = 0.0
        self.on_call = None

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, cwd: Path | None = None) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        if self.on_call:
            self.on_call(argv)
        best = max((k for k in self.answers if argv[:len(k)] == k), key=len, default=None)
        if best is None:
            return Result(0, "", "")
        queue = self.answers[best]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.present else None

    def start_background(self, argv: Sequence[str], log_path: Path) -> None:
        self.background.append(tuple(argv))

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def monotonic(self) -> float:
        return self.clock

    def is_root(self) -> bool:
        return self.root

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[:len(prefix)] == prefix]


class SerialPool:
    """Stands in for lab.host.pool.LabPool in the CLI's tests: every item in turn, on one placeholder lab."""

    def __init__(self, project: str = "fake") -> None:
        import types

        self.lab = types.SimpleNamespace(project=project)
        self.items: list[object] = []

    def map(self, items, work, *, cost=None, done=None):  # type: ignore[no-untyped-def]
        results = {}
        for item in items:
            self.items.append(item)
            results[item] = work(self.lab, item)
            if done is not None:
                done(item, results[item], 0.0)
        return results


def with_serial_pool(opts, ui, jobs, job, *, keep=False):  # type: ignore[no-untyped-def]
    """A stand-in for lab.host.cli._with_pool: no Docker, one SerialPool."""
    return job(SerialPool())
