"""One packet in ten is lost, in both directions (iptables statistic DROP)."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect
from lab.inlab.workloads import converse

NAME = "packet-loss"
TITLE = "Packet loss"
HOWTO = "Using a Socket"
WIRE = """
The server's namespace drops a random 10 % of the packets to and from its port. TCP repairs
it: unacknowledged segments are sent again after a retransmission timeout (200 ms at
least on Linux), so every byte still arrives, in order, only later. This is the failure TCP
was built to hide, and socket code should not notice it beyond the delay.
"""
INJECTION = (f"The server-agent drops packets of port {DEFAULT_PORT} at random, probability 0.1 each way "
             "(iptables statistic).")
PATH = "direct"
COUNT = 40
SIZE = 2048
EXPECT = {
    "robust": Expect("completed", note="every reply intact, some late"),
    "naive": Expect("completed", note="TCP retransmits; blocking loops just wait"),
}
REMEMBER = "TCP hides loss by retransmitting: you see delay, never missing bytes."
LOOK_FOR = "Retransmitted segments (the same sequence numbers again) after gaps of 200 ms or more; every byte arrives in the end."


def run(ctx):
    before = ctx.client_agent.tcp_stats()
    handle = {}

    def fault():
        handle["loss"] = ctx.apply("loss", port=DEFAULT_PORT, probability=0.1)

    ctx.side_by_side(converse(before=1, after=COUNT, size=SIZE), fault=fault)
    dropped = handle["loss"].dropped() if "loss" in handle else 0
    after = ctx.client_agent.tcp_stats()
    retrans = after["tcp"]["RetransSegs"] - before["tcp"]["RetransSegs"]
    ctx.facts["client_retransmissions"] = retrans
    ctx.prove("packets were really dropped", dropped > 0, f"{dropped} packets dropped by the rules")
    ctx.prove("the client's kernel retransmitted", retrans > 0, f"RetransSegs grew by {retrans}")
    for impl in ctx.impls:
        ctx.check(impl, f"all {COUNT + 1} replies intact", ctx.outcomes[impl].exchanges_ok == COUNT + 1,
                  f"{ctx.outcomes[impl].exchanges_ok} intact")
