# Nobody listens: the supervisor stops every server and keeps them stopped. The host is
# up, so its kernel answers every SYN to the port with an RST: connect() fails at once
# with ECONNREFUSED. Cleared by letting the supervisor start them again.
from __future__ import annotations

from lab.addresses import SERVER_PORTS
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, NoParams, register
from lab.inlab.processes import describe, servers

GONE_WAIT = 10.0


@register
class Refuse(Fault):
    name = "refuse"
    params: NoParams

    def __init__(self, ctx: FaultContext, params: NoParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        agent = self.ctx.server_agent
        before = servers(agent.processes())
        self.ctx.server_agent.signal("supervisor", "USR1")
        self.active = True
        for server in SERVER_PORTS:
            # Raises AgentError when a server is still there: the runner records a failed proof.
            agent.wait_process(server, "gone", timeout=GONE_WAIT)
        # Read back, not assumed: the agent's process list holds no server process at all.
        left = servers(agent.processes())
        ports = " or ".join(str(port) for port in SERVER_PORTS.values())
        self.ctx.prove(f"no server process is left (nothing can listen on {ports})", bool(before) and not left,
                       f"before: {', '.join(map(describe, before)) or 'none'}; "
                       f"after: {', '.join(map(describe, left)) or 'none'}")

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_agent.signal("supervisor", "USR2")
