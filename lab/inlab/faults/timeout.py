# Toxiproxy timeout toxic. With timeout 0 the proxy stops passing data and holds the connection open forever. Its
# kernel keeps ACKing the client's bytes, so neither keepalive nor TCP_USER_TIMEOUT sees
# anything wrong: a black hole that only an application deadline can find.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults.toxic import Toxic


@register
class Timeout(Toxic):
    name = "timeout"
    kind = "timeout"
