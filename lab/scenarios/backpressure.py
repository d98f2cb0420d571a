"""The server stops reading: the client's sends fill every buffer and stall."""

from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import body

NAME = "backpressure"
TITLE = "Backpressure: the peer stops reading"
HOWTO = "Non-blocking Sockets"
WIRE = """
The server is alive but stops calling recv. Its receive buffer fills, its kernel advertises
a zero window, and the client's send buffer fills behind it. From then on send() cannot
make progress: a blocking send waits forever, a non-blocking one keeps saying "try later".
Careful code notices that nothing has moved for its write deadline and says the peer is not
reading. The 15 MiB message is bigger than both kernels' buffers together.
"""
INJECTION = "The threaded server is told (control port) to stop reading after 1 message."
PATH = "direct"
WATCHDOG = 10.0
BIG = 15 * 1024 * 1024
EXPECT = {
    "robust": Expect("error", ("SendStalled",), within=bound("send_stall", 6.0),
                     note="filling both kernels' buffers (they grow as data arrives) + write timeout 2 s"),
    "naive": Expect("blocked", note="send() blocks for as long as the peer does not read"),
}
REMEMBER = "A peer that stops reading stops your sends too: writes need a deadline as much as reads."
LOOK_FOR = "The server advertises a shrinking window, then a zero window; the client's kernel sends window probes, answered with window 0."


def worker(ctx, subject, outcome):
    subject.connect()
    ctx.exchange(subject, outcome, body(1, 100))
    ctx.ready()
    payload = body(2, BIG)
    ctx.mark(f"client[{subject.impl}]", "sending 15 MiB to a peer that does not read")
    subject.send(payload)
    outcome.measurements["sent_all"] = True


def run(ctx):
    ctx.apply("behave", mode="stop_reading", after=1)
    before = ctx.server_agent.tcp_stats()
    ctx.side_by_side(worker, fault=lambda: ctx.mark("lab", "server stopped reading after message 1"))
    after = ctx.server_agent.tcp_stats()
    zero = after["tcp_ext"]["TCPToZeroWindowAdv"] - before["tcp_ext"]["TCPToZeroWindowAdv"]
    ctx.prove("the server's kernel advertised a zero window", zero > 0, f"TCPToZeroWindowAdv grew by {zero}")
    if "robust" in ctx.impls:
        outcome = ctx.outcomes["robust"]
        last = outcome.measurements.get("last_send_progress")
        if last is not None and outcome.ended_at is not None:
            stalled = outcome.ended_at - (last - ctx.t0)
            ctx.check("robust", "reported within write timeout + 1 s of the last byte the kernel took",
                      0 <= stalled <= ctx.config.timeouts.write + 1.0,
                      f"{stalled:.3f} s after the send stopped moving; bound {ctx.config.timeouts.write + 1.0:g} s")
        else:
            ctx.check("robust", "reported within write timeout + 1 s of the last byte the kernel took", False,
                      f"no progress time recorded (ended {outcome.ended_at}, last progress {last})")
        facts = outcome.facts
        ctx.check("robust", "it says how much was accepted before the stall",
                  0 < facts.get("sent", 0) < facts.get("total", 0),
                  f"{facts.get('sent')} of {facts.get('total')} bytes")
