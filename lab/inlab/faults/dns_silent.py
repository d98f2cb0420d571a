# The resolver goes silent: every query the client's resolver sends to Docker's DNS (127.0.0.11)
# is dropped on its way in to the resolver's socket. Nothing answers, not even an error: the
# client's resolver (glibc) waits its timeout (5 s) per attempt, twice, then reports
# EAI_AGAIN ("Temporary failure in name resolution"). No TCP segment is ever sent: the
# connection fails before it has an address to connect to.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults._dns import ResolverFault


@register
class DnsSilent(ResolverFault):
    name = "dns-silent"
    action = "drop"
