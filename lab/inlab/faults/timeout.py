# Toxiproxy timeout toxic. With timeout 0 the proxy stops passing data and holds the connection open forever. Its
# kernel keeps ACKing the client's bytes, so neither keepalive nor TCP_USER_TIMEOUT sees
# anything wrong: a black hole that only an application deadline can find.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class TimeoutParams(ToxicParams):
    timeout: int = param(0, ge=0)    # ms before the proxy closes; 0: never


@register
class Timeout(Toxic):
    name = "timeout"
    kind = "timeout"
    params: TimeoutParams
