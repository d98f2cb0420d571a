"""The server's close reaches the client a second late (Toxiproxy slow_close)."""

import time

from lab.sockets.errors import PeerClosed
from lab.inlab.scenario import Expect
from lab.inlab.workloads import body

NAME = "slow-close"
TITLE = "Slow close"
HOWTO = "Disconnecting"
WIRE = """
The server answers and closes at once, but Toxiproxy holds the close for 1000 ms. The reply
arrives on time; the FIN comes a second later. A reader that waits for EOF to know the
reply is complete waits that much longer, which is one reason protocols say how long a
message is instead of relying on the close.
"""
INJECTION = ("The threaded server closes after 1 message; a Toxiproxy slow_close toxic (downstream, "
             "delay 1000 ms) delays the close.")
PATH = "proxied"
DELAY_MS = 1000
EXPECT = {"robust": Expect("completed", note="the reply intact, then the close, measured")}
REMEMBER = "Don't wait for the close to know a message ended: the close can be late."
LOOK_FOR = "The reply arrives at once; the FIN follows a second later."


def worker(ctx, subject, outcome):
    subject.connect()
    ctx.exchange(subject, outcome, body(1, 100))
    replied = time.monotonic()
    try:
        subject.conn.recv_frame(timeout=5.0)
    except PeerClosed:
        delay = time.monotonic() - replied
        outcome.measurements["close_delay_s"] = round(delay, 3)
        ctx.mark("client[robust]", "peer closed", after_reply_s=round(delay, 3))


def run(ctx):
    ctx.apply("behave", mode="close", after=1)
    ctx.apply("slow-close", delay=DELAY_MS)
    ctx.side_by_side(worker)
    delay = ctx.outcomes["robust"].measurements.get("close_delay_s")
    ctx.check("robust", "the close came about a second after the reply",
              delay is not None and DELAY_MS / 1000 * 0.9 <= delay <= DELAY_MS / 1000 + 0.5,
              f"close {delay} s after the reply; toxic delay {DELAY_MS} ms")
    ctx.prove("the close was held back by the toxic", delay is not None and delay >= DELAY_MS / 1000 * 0.9,
              f"{delay} s")
