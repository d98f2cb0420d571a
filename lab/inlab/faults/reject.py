# Reject with RST: the server's namespace answers every packet to the port with a TCP
# reset (iptables REJECT --reject-with tcp-reset). To the client this is exactly what a
# peer that aborted the connection sends: the next recv or send fails with ECONNRESET
# (or EPIPE once the reset has been seen). Unlike a reset relayed through Toxiproxy,
# which arrives as a plain FIN, this RST really is on the client's wire.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults._iptables import IptablesFault


@register
class Reject(IptablesFault):
    name = "reject"
    rule = {"direction": "in", "action": "reject-rst"}
