# Freeze: SIGSTOP the server process. It stops running, but its kernel does not: the
# socket stays open, incoming segments are ACKed and queued, keepalive probes are
# answered. On the wire the peer looks alive and silent. Cleared with SIGCONT.
from __future__ import annotations

from typing import Any

from lab.inlab.faults import Fault, register, server_param


@register
class Freeze(Fault):
    name = "freeze"

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        self.server = server_param(params)
        self.frozen = False

    def apply(self) -> None:
        self.ctx.server_agent.signal(self.server, "STOP")
        self.frozen = True
        pid = self.ctx.server_agent.wait_process(self.server, "stopped", timeout=5)
        self.ctx.prove("server process is stopped (state T)", bool(pid), f"pid {pid}")

    def clear(self) -> None:
        if self.frozen:
            self.frozen = False
            self.ctx.server_agent.signal(self.server, "CONT")
