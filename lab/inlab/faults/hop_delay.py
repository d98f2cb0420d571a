# Delay with jitter on the path: the router holds each data segment of the server's port going
# one way for a delay drawn anew per packet (delay ± jitter, uniform, seeded) before it forwards
# it; its NFQUEUE handler gives each verdict when that packet's time comes. Unlike Toxiproxy's
# latency toxic, which delays a byte stream between two sockets, this delays packets on the
# wire: the sender's TCP sees a longer round trip, and segments whose delays differ by more
# than the gap between them arrive reordered.
from __future__ import annotations

import dataclasses
from typing import Any

from lab.inlab.faults import param, register
from lab.inlab.faults._path import MangleFault, PathParams


@dataclasses.dataclass(frozen=True)
class HopDelayParams(PathParams):
    delay_ms: float = param(100.0, ge=1, le=5000)   # each segment's mean delay at the router
    jitter_ms: float = param(20.0, ge=0, le=5000)   # ± this much, drawn per segment
    seed: int = param(1, ge=0, le=2**31)            # the draw's seed: the same run, the same delays


@register
class HopDelay(MangleFault):
    name = "hop-delay"
    kind = "delay"
    params: HopDelayParams

    def fields(self) -> dict[str, Any]:
        p = self.params
        return {"delay_ms": p.delay_ms, "jitter_ms": p.jitter_ms, "seed": p.seed}
