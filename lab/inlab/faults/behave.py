# A server behaviour, set through the server's control port: close between messages
# (FIN), abort (SO_LINGER 0: RST), stop reading (the receive window fills, then the
# client's sends block), stop accepting (connections wait in the listen backlog).
# The server does it on purpose, so the wire shows exactly that and nothing else.
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, Server, param, register
from lab.server.behaviour import Mode


@dataclasses.dataclass(frozen=True)
class BehaveParams:
    """The server, then lab.server.behaviour.Behaviour's fields; None keeps what the server does now."""

    server: Server = "threaded"
    mode: Mode | None = None
    after: int | None = param(None, ge=0)   # DATA messages per connection before the mode applies
    ack_last: bool | None = None
    accepting: bool | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "server" and v is not None}


@register
class Behave(Fault):
    name = "behave"
    params: BehaveParams

    def __init__(self, ctx: FaultContext, params: BehaveParams) -> None:
        super().__init__(ctx, params)
        self.active = False

    def apply(self) -> None:
        server, changes = self.params.server, self.params.changes()
        reply = self.ctx.server_control(server, cmd="behave", **changes)
        self.active = True
        self.ctx.prove(f"server {server} behaviour set", all(reply["behaviour"].get(k) == v
                                                              for k, v in changes.items()),
                       str(reply["behaviour"]))

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_control(self.params.server, cmd="reset")
