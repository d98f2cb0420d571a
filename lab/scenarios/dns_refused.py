"""The resolver refuses at once: connecting by name fails fast, and must say it was the name."""

from lab.inlab import resolver
from lab.inlab.scenario import Expect, fixed

NAME = "dns-refused"
TITLE = "A resolver that refuses"
HOWTO = "Creating a Socket"
WIRE = """
Before a client can send its SYN it must turn the server's name into an address, by asking
the resolver (Docker's DNS server at 127.0.0.11 in the client's own namespace) over UDP. Here
each query is answered at once with an ICMP "port unreachable", what a host sends when
nothing listens on its DNS port. The C library reads that as a refused query, gives up on its
only name server and reports "Temporary failure in name resolution" within milliseconds. No
TCP segment is ever sent. The error is quick but it is not about the server: code that calls
every failure "connection refused" or "server down" sends its user to look in the wrong place.
"""
INJECTION = ("The client-agent answers every query to Docker's DNS (127.0.0.11) with ICMP port unreachable "
             "(iptables REJECT in INPUT on lo).")
PATH = "direct"
WATCHDOG = 5.0
EXPECT = {
    "robust": Expect("error", ("NameUnresolvable",), within=fixed(0.5), detail={"reason": "resolver-error"},
                     note="the resolver's refusal comes back in milliseconds; 0.5 s"),
    "naive": Expect("error", ("gaierror",), within=0.5,
                    note="a raw socket.gaierror, in milliseconds: nothing in it says which step failed"),
}
REMEMBER = "Name resolution is a step of its own that fails in its own way: report it as such."
LOOK_FOR = ("No TCP at all. The resolver's counters show each query going in to 127.0.0.11 and one ICMP port "
            "unreachable coming back for it, no DNS answer.")


def run(ctx):
    resolver.run(ctx, lambda: ctx.apply("dns-refused"), refused)
    for impl in ctx.judged:
        ctx.facts[f"{impl}_resolve_s"] = ctx.outcomes[impl].measurements.get("connect_s")


def refused(seen, subjects):
    # Refused: one ICMP error back for every query in, and not a single DNS answer.
    return (seen["answers"] == 0 and seen["errors"] >= 1 and seen["errors"] == seen["queries"],
            f"{seen['queries']} queries in, {seen['errors']} ICMP port unreachable and {seen['answers']} DNS "
            "answers back")
