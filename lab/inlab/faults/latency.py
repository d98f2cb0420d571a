# Toxiproxy latency toxic. Every chunk of data is held for latency ms (± jitter ms) before the proxy passes it on.
# Bytes arrive intact and in order, only later: each round trip grows by the delay on each
# direction the toxic sits on.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class LatencyParams(ToxicParams):
    latency: int = param(0, ge=0)    # ms
    jitter: int = param(0, ge=0)     # ms, either way


@register
class Latency(Toxic):
    name = "latency"
    kind = "latency"
    params: LatencyParams
