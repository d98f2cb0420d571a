"""A 1 MiB message squeezed through a 500 KB/s link (Toxiproxy bandwidth)."""

from lab.inlab.scenario import Expect
from lab.inlab.workloads import converse

NAME = "bandwidth"
TITLE = "Bandwidth limit"
HOWTO = "Using a Socket"
WIRE = """
Toxiproxy lets the client's bytes through at 500 KB/s. A 1 MiB message takes about two
seconds to cross; meanwhile the client's send buffer fills and send() accepts only part of
what it is offered each time. Code that loops until every byte is sent and every byte is
read gets the message intact. Code that assumes one recv returns a whole message returns
the first piece of it.
"""
INJECTION = "A Toxiproxy bandwidth toxic (upstream, rate 500 KB/s; 1 KB = 1000 bytes) on the threaded proxy."
PATH = "proxied"
RATE_KBPS = 500
SIZE = 1024 * 1024
EXPECT = {
    "robust": Expect("completed", note="intact; throughput within ±15 % of the limit; partial sends seen"),
    "naive": Expect("completed", note="the send and recv loops keep going until every byte is handled"),
    "naive-single-recv": Expect("completed", corrupt=True, note="one recv returns a piece of the echo"),
}
REMEMBER = "send() and recv() handle what the buffers allow: loop until the whole message is through."
LOOK_FOR = "The client's segments reach the server spread over about two seconds; on the client side, send() returns less than it was offered."


def run(ctx):
    # One implementation at a time: sharing the 500 KB/s link would halve each one's rate.
    impls = list(ctx.impls)
    ctx.apply("bandwidth", stream="upstream", rate=RATE_KBPS)
    ctx.side_by_side(converse(before=0, after=1, size=SIZE, measure=True), sequential=True)
    for impl in impls:
        rtts = ctx.outcomes[impl].measurements.get("rtt_s", [])
        if not rtts:
            continue
        rate = SIZE / rtts[0] / 1000
        ctx.facts[f"{impl}_throughput_kBps"] = round(rate, 1)
        if impl == "robust":
            ctx.check(impl, "throughput within ±15 % of the limit", 0.85 * RATE_KBPS <= rate <= 1.15 * RATE_KBPS,
                      f"{rate:.0f} KB/s for {SIZE} bytes in {rtts[0]:.2f} s (limit {RATE_KBPS} KB/s)")
            partial = ctx.outcomes[impl].measurements.get("partial_sends", 0)
            ctx.check(impl, "partial sends observed", partial > 0, f"{partial} sends took less than offered")
    rate = ctx.facts.get("robust_throughput_kBps") or ctx.facts.get("naive_throughput_kBps") or 0
    ctx.prove("the transfer ran at the limited rate, not at memory speed", 0 < rate <= 1.15 * RATE_KBPS,
              f"{rate} KB/s")
