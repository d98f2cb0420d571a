# Toxiproxy bandwidth toxic. The proxy passes at most rate KB/s (1 KB = 1000 bytes), in small timed slices.
# A large message arrives intact but takes size / rate seconds, and the sender's
# kernel buffers fill, so send() accepts only part of what it is offered.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class Bandwidth(Toxic):
    name = "bandwidth"
    kind = "bandwidth"
