# A server behaviour, set through the server's control port: close between messages
# (FIN), abort (SO_LINGER 0: RST), stop reading (the receive window fills, then the
# client's sends block), stop accepting (connections wait in the listen backlog).
# The server does it on purpose, so the wire shows exactly that and nothing else.
from __future__ import annotations

from typing import Any

from lab.inlab.faults import Fault, register
from lab.server.behaviour import Behaviour


@register
class Behave(Fault):
    name = "behave"

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        self.server = params.pop("server", "threaded")
        self.changes = params
        Behaviour().replace(**self.changes)  # checks names and values before anything is sent
        self.active = False

    def apply(self) -> None:
        reply = self.ctx.server_control(self.server, cmd="behave", **self.changes)
        self.active = True
        self.ctx.prove(f"server {self.server} behaviour set", all(reply["behaviour"].get(k) == v
                                                                   for k, v in self.changes.items()),
                       str(reply["behaviour"]))

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_control(self.server, cmd="reset")
