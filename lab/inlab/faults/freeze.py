# Freeze: SIGSTOP the server process. It stops running, but its kernel does not: the
# socket stays open, incoming segments are ACKed and queued, keepalive probes are
# answered. On the wire the peer looks alive and silent. Cleared with SIGCONT.
from __future__ import annotations

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, ServerParams, register


@register
class Freeze(Fault):
    name = "freeze"
    params: ServerParams

    def __init__(self, ctx: FaultContext, params: ServerParams) -> None:
        super().__init__(ctx, params)
        self.frozen = False

    def apply(self) -> None:
        self.ctx.server_agent.signal(self.params.server, "STOP")
        self.frozen = True
        pid = self.ctx.server_agent.wait_process(self.params.server, "stopped", timeout=5)
        self.ctx.prove("server process is stopped (state T)", bool(pid), f"pid {pid}")

    def clear(self) -> None:
        if self.frozen:
            self.frozen = False
            self.ctx.server_agent.signal(self.params.server, "CONT")
