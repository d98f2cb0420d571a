"""The resolver says nothing: connecting by name waits for the name, not for the server."""

from lab.inlab import resolver
from lab.inlab.scenario import Expect, bound

NAME = "dns-silent"
TITLE = "A silent resolver"
HOWTO = "Creating a Socket"
WIRE = """
Before a client can send its SYN it must turn the server's name into an address. It asks the
resolver, Docker's DNS server at 127.0.0.11 in the client's own namespace, with one small UDP
datagram per address family (A and AAAA). Here every query is lost on its way in and nothing
comes back, not even an error. No TCP segment is ever sent. Python's getaddrinfo has no
timeout of its own: the C library waits 5 s for an answer, asks again, waits 5 s more, and
only then reports "Temporary failure in name resolution", 10 s after the call, whatever
deadline the caller had in mind for its connect.
"""
INJECTION = ("The client-agent drops every query to Docker's DNS (127.0.0.11) on its way in to the resolver's "
             "socket (iptables DROP in INPUT on lo), so the client's resolver sent it and waits for an answer.")
PATH = "direct"
# glibc gives up after 2 attempts × 5 s: measured 10.01 s in the lab (see the naive check below).
RESOLVER_GIVES_UP_S = 10.0
WATCHDOG = 14.0
EXPECT = {
    "robust": Expect("error", ("NameUnresolvable",), within=bound("connect", 0.5),
                     detail={"reason": "resolver-timeout"},
                     note="the name is resolved inside the connect deadline (3 s) + 0.5 s"),
    "naive": Expect("error", ("gaierror",), within=RESOLVER_GIVES_UP_S + 1.5,
                    note="glibc's own timeouts: 2 attempts × 5 s = 10 s, + 1.5 s"),
}
REMEMBER = "A connect by name starts with a lookup that has no deadline of its own: bound the lookup too."
LOOK_FOR = ("No TCP at all: the capture of port 7000 stays empty. The resolver's counters show the queries "
            "going in to 127.0.0.11 and nothing coming back; the naive client reports EAI_AGAIN 10 s later.")


def run(ctx):
    resolver.run(ctx, lambda: ctx.apply("dns-silent"), silent)
    outcome = ctx.outcomes.get("naive")
    if outcome is not None and "naive" in ctx.judged:
        took = outcome.measurements.get("connect_s", 0.0)
        ctx.facts["naive_resolve_s"] = took
        ctx.check("naive", "waited for the resolver's own timeouts (2 × 5 s) before its error",
                  outcome.status != "error" or took >= RESOLVER_GIVES_UP_S - 0.5,
                  f"getaddrinfo returned after {took:.2f} s (glibc's timeouts: {RESOLVER_GIVES_UP_S:g} s)")
    outcome = ctx.outcomes.get("robust")
    if outcome is not None and "robust" in ctx.judged:
        ctx.facts["robust_resolve_s"] = outcome.measurements.get("connect_s")


def silent(seen, subjects):
    # Dropped: no DNS answer and no ICMP error came back to the client while the fault was in place.
    return (seen["answers"] == 0 and seen["errors"] == 0,
            f"{seen['queries']} queries in, {seen['answers']} DNS answers and {seen['errors']} ICMP errors back")
