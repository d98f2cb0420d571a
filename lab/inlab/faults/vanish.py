# Host vanishes: every packet to and from the server's port is dropped in the server's
# own network namespace (iptables DROP on INPUT and OUTPUT). Nothing is sent back: no
# FIN, no RST, no ICMP. The client's segments and probes go unanswered, as if the host
# had lost power or its cable. Cleared by removing the rules.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults._iptables import IptablesFault


@register
class Vanish(IptablesFault):
    name = "vanish"
    rule = {"direction": "both", "action": "drop"}
