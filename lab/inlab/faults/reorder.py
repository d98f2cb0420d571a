# Reordering on the path: the router holds every Nth data segment of the server's port going one
# way and lets the next one overtake it (its NFQUEUE handler gives the held segment's verdict
# after the next segment's, or after 200 ms if none comes). The receiver's TCP queues the early
# segment out of order, ACKs what it has (a duplicate ACK with a SACK block), and delivers both,
# in order, once the late one arrives. The application sees nothing.
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.faults import param, register
from lab.inlab.faults._path import MangleFault, PathParams


@dataclasses.dataclass(frozen=True)
class ReorderParams(PathParams):
    every: int = param(2, ge=1, le=1000)    # one data segment in this many is held behind the next


@register
class Reorder(MangleFault):
    name = "reorder"
    kind = "reorder"
    params: ReorderParams

    def fields(self) -> dict[str, Any]:
        return {"every": self.params.every}
