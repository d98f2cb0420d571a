# Toxiproxy latency toxic. Every chunk of data is held for latency ms (± jitter ms) before the proxy passes it on.
# Bytes arrive intact and in order, only later: each round trip grows by the delay on each
# direction the toxic sits on.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class Latency(Toxic):
    name = "latency"
    kind = "latency"
