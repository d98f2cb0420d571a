# Nobody listens: the supervisor stops both servers and keeps them stopped. The host is
# up, so its kernel answers every SYN to the port with an RST: connect() fails at once
# with ECONNREFUSED. Cleared by letting the supervisor start them again.
from __future__ import annotations

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, NoParams, register


@register
class Refuse(Fault):
    name = "refuse"
    params: NoParams

    def __init__(self, ctx: FaultContext, params: NoParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        self.ctx.server_agent.signal("supervisor", "USR1")
        self.active = True
        for server in ("threaded", "selectors"):
            self.ctx.server_agent.wait_process(server, "gone", timeout=10)
        self.ctx.prove("no server process is left", True, "supervisor holds both servers stopped")

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_agent.signal("supervisor", "USR2")
