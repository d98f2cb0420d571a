# A server behaviour, set through the server's control port: close between messages
# (FIN), abort (SO_LINGER 0: RST), stop reading (the receive window fills, then the
# client's sends block), stop accepting (connections wait in the listen backlog).
# The server does it on purpose, so the wire shows exactly that and nothing else.
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.context import FaultContext, ScenarioContext
from lab.inlab.faults import Fault, Server, param, register
from lab.inlab.processes import server_named
from lab.server.behaviour import NOFILE_MAX, NOFILE_MIN, Mode


@dataclasses.dataclass(frozen=True)
class BehaveParams:
    """The server, then lab.server.behaviour.Behaviour's fields; None keeps what the server does now."""

    server: Server = "threaded"
    mode: Mode | None = None
    after: int | None = param(None, ge=0)   # DATA messages per connection before the mode applies
    ack_last: bool | None = None
    accepting: bool | None = None
    nofile: int | None = param(None, ge=NOFILE_MIN, le=NOFILE_MAX)   # see the nofile fault

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "server" and v is not None}


@register
class Behave(Fault):
    name = "behave"
    params: BehaveParams

    def __init__(self, ctx: FaultContext, params: BehaveParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.expected: dict[str, Any] | None = None   # the whole behaviour the server must now have

    def _behaviour(self) -> dict[str, Any]:
        return dict(self.ctx.server_control(self.params.server, cmd="stats")["stats"]["behaviour"])

    def apply(self) -> None:
        server, changes = self.params.server, self.params.changes()
        before = self._behaviour()
        self.ctx.server_control(server, cmd="behave", **changes)
        self.active = True
        # Read back from the server's stats rather than trusting the reply, and compare all of
        # it: a field the request should have left alone counts as much as one it set.
        self.expected = {**before, **changes}
        now = self._behaviour()
        self.ctx.prove(f"server {server} reads back the behaviour asked for", now == self.expected,
                       f"asked {changes}; reads back {now}")

    def prove_in_use(self, ctx: ScenarioContext, port: int) -> dict[str, Any]:
        """Prove that the server behind ``port`` (the one the subjects talk to) behaves as asked.

        ``ctx`` is the scenario's own context, not the fault's: a fault that steered the wrong
        server would read that wrong server back. Returns that server's stats (connections
        accepted and closed, how), which the scenario may hold against its capture.
        """
        server = server_named(port)
        stats = ctx.server_stats(server)
        got = stats.get("behaviour")
        ok = self.expected is not None and stats.get("port") == port and got == self.expected
        ctx.prove(f"the server the clients use (port {port}) behaves as asked", ok,
                  f"{server} on port {stats.get('port')}: {got}; asked {self.params.changes()} "
                  f"of {self.params.server}")
        return stats

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.server_control(self.params.server, cmd="reset")
