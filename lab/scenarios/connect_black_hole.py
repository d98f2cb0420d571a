"""Connecting into a black hole: the SYNs are dropped and nothing answers."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import connect_then_exchange

NAME = "connect-black-hole"
TITLE = "Connect into a black hole"
HOWTO = "Creating a Socket"
WIRE = """
The server's namespace drops every SYN to the port. The client's kernel sends the SYN
again and again (six retries by default, tcp_syn_retries; recent kernels space the first
few one second apart, then double the gap) and gives up only after a minute or two. A
connect() without a deadline waits all of that; a connect deadline ends it when you decide.
"""
INJECTION = f"The server-agent drops new connections' SYNs to port {DEFAULT_PORT} (iptables DROP on --syn)."
PATH = "direct"
WATCHDOG = 7.0
EXPECT = {
    "robust": Expect("error", ("ConnectTimeout",), within=bound("connect", 0.5), note="connect timeout 3 s + 0.5 s"),
    "naive": Expect("blocked", note="the kernel keeps retrying its SYN for a minute or two"),
}
REMEMBER = "connect() has no deadline of its own: give it one."
LOOK_FOR = "The same SYN again and again, with no answer; the rule's counter counts each one."


def run(ctx):
    handle = {}

    def fault():
        handle["drop"] = ctx.apply("syn-drop", port=DEFAULT_PORT)

    fault()
    ctx.side_by_side(connect_then_exchange())
    dropped = handle["drop"].dropped()
    ctx.prove("SYNs were dropped, and retried", dropped >= 2 * len(ctx.impls),
              f"{dropped} SYNs dropped for {len(ctx.impls)} clients")
