# Toxiproxy bandwidth toxic. The proxy passes at most rate KB/s (1 KB = 1000 bytes), in small timed slices.
# A large message arrives intact but takes size / rate seconds, and the sender's
# kernel buffers fill, so send() accepts only part of what it is offered.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class BandwidthParams(ToxicParams):
    rate: int = param(0, ge=0)       # KB/s (1 KB = 1000 bytes)


@register
class Bandwidth(Toxic):
    name = "bandwidth"
    kind = "bandwidth"
    params: BandwidthParams
