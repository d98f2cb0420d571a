# Toxiproxy limit_data toxic. The proxy passes exactly bytes bytes in this direction, then closes both sides.
# The reader gets a clean FIN in the middle of whatever message was under way: a cut stream,
# not an error from the kernel.
from __future__ import annotations

import dataclasses

from lab.inlab.faults import param, register
from lab.inlab.faults.toxic import Toxic, ToxicParams


@dataclasses.dataclass(frozen=True)
class LimitDataParams(ToxicParams):
    bytes: int = param(0, ge=0)      # passed before the close


@register
class LimitData(Toxic):
    name = "limit-data"
    kind = "limit_data"
    params: LimitDataParams
