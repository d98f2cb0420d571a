# The resolver refuses at once: every query to Docker's DNS (127.0.0.11) is answered with ICMP
# port unreachable from the resolver's address, as a host with no DNS server listening would
# answer. The client's resolver reads ECONNREFUSED on its UDP socket, gives up on its only
# nameserver and reports EAI_AGAIN within milliseconds. No TCP segment is ever sent.
from __future__ import annotations

from lab.inlab.faults import register
from lab.inlab.faults._dns import ResolverFault


@register
class DnsRefused(ResolverFault):
    name = "dns-refused"
    action = "reject"
