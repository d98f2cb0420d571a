# A container-level fault done by the host, through the Docker SDK: `docker pause` (the cgroup
# freezer stops every process in the server container; its kernel keeps ACKing, exactly like a
# SIGSTOP), `docker network disconnect` (the host vanishes from the lab network: silence), or
# `docker kill` (every process dies at once). The runner inside the lab cannot reach Docker (no
# Docker socket anywhere in the lab), so it asks the host on its standard output and waits for
# the host's answer in a file (written aside and renamed into place); the host's test harness
# does the rest (tests/support/host_faults.py).
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, register

Action = Literal["pause", "disconnect", "kill"]
ACTIONS: dict[str, str] = {"pause": "unpause", "disconnect": "connect", "kill": "start"}  # action → its undoing
ANSWER_DIR = Path("/tmp")
WAIT_S = 60.0


@dataclasses.dataclass(frozen=True)
class HostParams:
    action: Action                # required: what the host does to the container
    service: str = "server"       # the compose service it does it to


@register
class HostFault(Fault):
    name = "host"
    params: HostParams

    def __init__(self, ctx: FaultContext, params: HostParams) -> None:
        super().__init__(ctx, params)
        self.applied = False

    def _ask(self, action: str) -> dict[str, Any]:
        token = uuid.uuid4().hex
        answer = ANSWER_DIR / f"host-fault-{token}.json"
        print(json.dumps({"host_fault": action, "service": self.params.service, "token": token}), flush=True)
        deadline = time.monotonic() + WAIT_S
        while not answer.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the host did not answer '{action} {self.params.service}' within {WAIT_S:g} s "
                                   "(run with --host-fault only under a harness that answers)")
            time.sleep(0.02)
        # The host writes the answer aside and renames it into place: once the name exists, all
        # of it is there. An answer that is not a JSON object is the harness's bug, said as such.
        text = answer.read_text()
        answer.unlink()
        try:
            reply = json.loads(text)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise RuntimeError(f"the host's answer to '{action} {self.params.service}' is not a JSON object: {text!r}")
        return reply

    def apply(self) -> None:
        reply = self._ask(self.params.action)
        self.applied = True
        # The fault exists from the host's answer on, not from the question: the round trip
        # through the harness (docker exec, the SDK call) takes seconds on a loaded machine.
        self.ctx.fault_at = self.ctx.mark("lab", f"docker {self.params.action} done by the host")
        self.ctx.prove(f"docker {self.params.action} of the {self.params.service} container took effect",
                       bool(reply.get("ok")), str(reply.get("evidence", "")))

    def clear(self) -> None:
        if self.applied:
            self.applied = False
            self._ask(ACTIONS[self.params.action])
