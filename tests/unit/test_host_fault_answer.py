"""The host fault's question and answer (lab/inlab/faults/host.py): the runner asks on standard output
and reads the host's answer from a file, which the harness renames into place once written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from lab.inlab.faults import host


class _Ctx:
    def __init__(self) -> None:
        self.fault_at: float | None = None
        self.proofs: list[tuple[str, bool, str]] = []

    def mark(self, actor: str, what: str) -> float:
        return 12.5

    def prove(self, name: str, ok: bool, detail: str) -> None:
        self.proofs.append((name, ok, detail))


def _fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str | None) -> tuple[Any, _Ctx]:
    token = uuid.UUID(int=7)
    monkeypatch.setattr(host, "ANSWER_DIR", tmp_path)
    monkeypatch.setattr(host.uuid, "uuid4", lambda: token)
    if answer is not None:
        (tmp_path / f"host-fault-{token.hex}.json").write_text(answer)
    ctx = _Ctx()
    return host.HostFault(ctx, host.HostParams(action="pause")), ctx  # type: ignore[arg-type]


def test_the_answer_is_read_once_there_and_proves_the_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fault, ctx = _fault(tmp_path, monkeypatch, json.dumps({"ok": True, "evidence": "status paused"}))
    fault.apply()
    asked = json.loads(capsys.readouterr().out)
    assert asked == {"host_fault": "pause", "service": "server", "token": uuid.UUID(int=7).hex}
    assert ctx.proofs == [("docker pause of the server container took effect", True, "status paused")]
    assert ctx.fault_at == 12.5 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_an_error_that_quotes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    fault, ctx = _fault(tmp_path, monkeypatch, text)
    with pytest.raises(RuntimeError, match=r"the host's answer to 'pause server' is not a JSON object: "):
        fault.apply()
    assert ctx.proofs == [] and not fault.applied


def test_no_answer_in_time_says_what_was_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fault, _ctx = _fault(tmp_path, monkeypatch, None)
    monkeypatch.setattr(host, "WAIT_S", 0.05)
    with pytest.raises(TimeoutError, match=r"the host did not answer 'pause server' within 0.05 s"):
        fault.apply()
