# Toxiproxy limit_data toxic. The proxy passes exactly bytes bytes in this direction, then closes both sides.
# The reader gets a clean FIN in the middle of whatever message was under way: a cut stream,
# not an error from the kernel.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class LimitData(Toxic):
    name = "limit-data"
    kind = "limit_data"
