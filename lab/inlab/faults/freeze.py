# Freeze: SIGSTOP the server process. It stops running, but its kernel does not: the
# socket stays open, incoming segments are ACKed and queued, keepalive probes are
# answered. On the wire the peer looks alive and silent. Cleared with SIGCONT.
from __future__ import annotations

from lab.addresses import SERVER_PORTS
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, ServerParams, register
from lab.inlab.processes import describe, serving

STOP_WAIT = 5.0


@register
class Freeze(Fault):
    name = "freeze"
    params: ServerParams

    def __init__(self, ctx: FaultContext, params: ServerParams) -> None:
        super().__init__(ctx, params)
        self.frozen = False

    def apply(self) -> None:
        agent, port = self.ctx.server_agent, SERVER_PORTS[self.params.server]
        before = serving(agent.processes(), port)
        pids = agent.signal(self.params.server, "STOP")
        self.frozen = True
        # Raises AgentError when nothing stops: the runner records that as a failed proof.
        agent.wait_process(self.params.server, "stopped", timeout=STOP_WAIT)
        # The proof reads the process list itself, by port: the process that serves the server's
        # port must be the same one as before, now in state T (stopped by a signal).
        now = serving(agent.processes(), port)
        ok = before is not None and now is not None and now["pid"] == before["pid"] and now["state"] == "T"
        self.ctx.prove(f"the process serving port {port} is stopped (state T)", ok,
                       f"before: {describe(before)}; SIGSTOP sent to pids {pids}; now: {describe(now)}")

    def clear(self) -> None:
        if self.frozen:
            self.frozen = False
            self.ctx.server_agent.signal(self.params.server, "CONT")
