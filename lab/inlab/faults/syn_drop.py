# SYNs into a black hole: the server's namespace drops every new connection's SYN to the
# port. The client's kernel retransmits the SYN (1 s, 3 s, 7 s, ... about 2 minutes in all
# on Linux) and never gets a SYN-ACK or an RST. Established connections are untouched.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults._iptables import IptablesFault


@register
class SynDrop(IptablesFault):
    name = "syn-drop"
    rule = {"direction": "in", "syn_only": True, "action": "drop"}
