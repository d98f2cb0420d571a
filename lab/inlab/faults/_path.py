"""What the router's packet faults share: one request to the router-agent, undone by its reset."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from lab.addresses import DEFAULT_PORT
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, param

Way = Literal["to-server", "to-client"]
# The router's packet handler calls a segment's direction by the port: "to" the server's port or "from" it.
DIRECTION: dict[str, str] = {"to-server": "to", "to-client": "from"}


@dataclasses.dataclass(frozen=True)
class PathParams:
    port: int = param(DEFAULT_PORT, ge=1, le=65535)   # the server's port whose segments are touched
    way: Way = "to-server"                            # which direction of that port


class MangleFault(Fault):
    """A packet fault done by the router's NFQUEUE handler; subclasses say which and how (``fields``)."""

    kind: str = ""
    params: PathParams

    def __init__(self, ctx: FaultContext, params: PathParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.reply: dict[str, Any] = {}

    def fields(self) -> dict[str, Any]:
        return {}

    def apply(self) -> None:
        self.reply = self.ctx.router_agent.mangle(self.kind, self.params.port, direction=DIRECTION[self.params.way],
                                                  **self.fields())
        self.active = True

    def counters(self) -> dict[str, int]:
        """What the router's handler did so far: seen, accepted, duplicated, reordered, delayed, corrupted..."""
        return self.ctx.router_agent.mangle_counters()

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.ctx.router_agent.reset()
