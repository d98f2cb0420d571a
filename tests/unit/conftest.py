"""Unit tests never reach Docker: a command line that starts ``docker`` or ``dockerd`` fails the test.

Each test replaces the command runner or the lab with a fake; this is the net under that rule,
so a code path that grows a new way to the engine (a pool of labs, say) shows up here as a
failure instead of labs quietly started and left behind by the unit suite.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.host import engine
from tests.support.fakes import FakeRunner


@pytest.fixture(autouse=True)
def no_real_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    real_run, real_stream, real_start = engine.Runner.run, engine.Runner.stream, engine.Runner.start_background

    def guard(real: Any) -> Any:
        def call(self: engine.Runner, argv: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self, FakeRunner) and list(argv)[:1] and str(list(argv)[0]).split("/")[-1] in (
                    "docker", "dockerd"):
                raise AssertionError(f"a unit test ran a real Docker command: {' '.join(map(str, argv))}")
            return real(self, argv, *args, **kwargs)
        return call

    monkeypatch.setattr(engine.Runner, "run", guard(real_run))
    monkeypatch.setattr(engine.Runner, "stream", guard(real_stream))
    monkeypatch.setattr(engine.Runner, "start_background", guard(real_start))
