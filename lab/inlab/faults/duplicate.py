# Duplication on the path: the router passes every Nth data segment of the server's port going one
# way and sends an exact copy of it right behind (its NFQUEUE handler accepts the original and
# injects the copy through a raw socket). The receiver's TCP sees the same sequence range twice,
# keeps one and answers the copy with an immediate duplicate ACK carrying a D-SACK block.
# The application sees nothing.
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.faults import param, register
from lab.inlab.faults._path import MangleFault, PathParams


@dataclasses.dataclass(frozen=True)
class DuplicateParams(PathParams):
    every: int = param(2, ge=1, le=1000)    # one data segment in this many is sent twice


@register
class Duplicate(MangleFault):
    name = "duplicate"
    kind = "duplicate"
    params: DuplicateParams

    def fields(self) -> dict[str, Any]:
        return {"every": self.params.every}
