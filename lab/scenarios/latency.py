"""Every byte from the server arrives 200 ms late (Toxiproxy latency)."""

import statistics

from lab.sockets.errors import PeerUnresponsive
from lab.sockets.robust import RobustConfig, RobustConnection
from lab.inlab.scenario import Expect
from lab.inlab.workloads import body, converse

NAME = "latency"
TITLE = "Latency"
HOWTO = "Using a Socket"
WIRE = """
Toxiproxy holds each chunk of the server's replies for 200 ms before passing it on. Nothing
is lost and nothing is reordered: TCP delivers the same bytes, later. Code that waits
patiently completes, each round trip about 200 ms longer. Code whose read deadline is
shorter than the delay must report a timeout, not a broken connection and not a short read.
"""
INJECTION = ("A Toxiproxy latency toxic (downstream, latency 200 ms, jitter 0) on the threaded proxy; then "
             "latency 200 ms ± 50 ms jitter.")
PATH = "proxied"
LATENCY_MS = 200
JITTER_MS = 50
EXPECT = {
    "robust": Expect("completed", note="every echo intact; RTT within ±20 % of 200 ms"),
    "naive": Expect("completed", note="the HOWTO's blocking loops simply wait"),
}
REMEMBER = "Latency is not failure: it only becomes an error when it exceeds the deadline you chose."
LOOK_FOR = "Each reply leaves the proxy 200 ms after the request arrived; the handshake itself is fast, because the toxic only delays data."


def run(ctx):
    applied = {}
    ctx.side_by_side(converse(before=1, after=5, measure=True),
                     fault=lambda: applied.setdefault("toxic", ctx.apply("latency", latency=LATENCY_MS, jitter=0)))
    applied["toxic"].clear()  # the next two parts bring their own toxic: never two at once
    for impl in ctx.impls:
        rtts = ctx.outcomes[impl].measurements.get("rtt_s", [])[1:]
        median = statistics.median(rtts) if rtts else 0.0
        ctx.facts[f"{impl}_median_rtt_s"] = median
        ctx.check(impl, "RTT within ±20 % of the injected delay", 0.8 * LATENCY_MS / 1000 <= median
                  <= 1.2 * LATENCY_MS / 1000, f"median {median * 1000:.1f} ms over {len(rtts)} round trips")
        ctx.check(impl, "all five delayed round trips intact", ctx.outcomes[impl].exchanges_ok == 6,
                  f"{ctx.outcomes[impl].exchanges_ok} intact")
    # A read deadline shorter than the delay: the careful code must say "timeout".
    if "robust" in ctx.impls:
        with ctx.toxiproxy.toxic("threaded", "latency", stream="downstream", latency=LATENCY_MS, jitter=0,
                                 name="lab_latency_deadline"):
            config = RobustConfig(timeouts=ctx.config.timeouts.replace(read=0.1), heartbeat_interval=None)
            host, port = ctx.target()
            started = ctx.now()
            try:
                with RobustConnection.connect(host, port, config) as conn:
                    conn.request(body(1, 100))
                error = None
            except PeerUnresponsive as exc:
                error = exc
            took = ctx.now() - started
            ctx.mark("client[robust]", "read deadline 100 ms under a 200 ms delay",
                     error=type(error).__name__ if error else None, after_s=round(took, 3))
            ctx.check("robust", "read deadline below the delay → PeerUnresponsive(read-deadline)",
                      error is not None and error.detected_by == "read-deadline" and took < 0.1 + 0.15,
                      f"{type(error).__name__ if error else 'no error'} after {took:.3f} s")
    # With jitter: every delay lands in latency ± jitter, and they differ from one another.
    if "robust" in ctx.impls:
        with ctx.toxiproxy.toxic("threaded", "latency", stream="downstream", latency=LATENCY_MS, jitter=JITTER_MS,
                                 name="lab_latency_jitter"):
            host, port = ctx.target()
            rtts = []
            with RobustConnection.connect(host, port, ctx.config) as conn:
                for seq in range(8):
                    started = ctx.now()
                    conn.request(body(seq, 100))
                    rtts.append(round(ctx.now() - started, 4))
        low, high = (LATENCY_MS - JITTER_MS) / 1000, (LATENCY_MS + JITTER_MS) / 1000
        ctx.facts["robust_jitter_rtts_s"] = rtts
        ctx.mark("client[robust]", f"{len(rtts)} round trips with ±{JITTER_MS} ms jitter",
                 min_s=min(rtts), max_s=max(rtts))
        ctx.check("robust", f"with jitter every RTT within {LATENCY_MS}±{JITTER_MS} ms (+20 % slack), and they vary",
                  all(0.8 * low <= r <= 1.2 * high for r in rtts) and max(rtts) - min(rtts) > 0.01,
                  f"RTTs {min(rtts) * 1000:.0f}–{max(rtts) * 1000:.0f} ms")
    median = ctx.facts.get("robust_median_rtt_s") or ctx.facts.get("naive_median_rtt_s") or 0
    ctx.prove("round trips grew by the injected delay", median >= LATENCY_MS / 1000,
              f"median RTT {median * 1000:.1f} ms")
