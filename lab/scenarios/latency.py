"""Every byte from the server arrives 200 ms late (Toxiproxy latency)."""

import statistics
import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window
from lab.evidence.legs import connections, exchanges, pair, proxy_legs
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
LOOK_FOR = ("In `server.pcap` each request reaches the server and its reply leaves at once; in `client.pcap` "
            "the reply arrives 200 ms after the request left. The handshake itself is fast, because the toxic "
            "only delays data.")


def run(ctx):
    client_capture = ctx.capture("client")
    server_capture = ctx.capture("server")
    applied = {}
    ctx.side_by_side(converse(before=1, after=5, measure=True),
                     fault=lambda: applied.setdefault("toxic", ctx.apply("latency", latency=LATENCY_MS, jitter=0)))
    applied["toxic"].clear()  # the next two parts bring their own toxic: never two at once
    fixed = {"window": Window(ctx.fault_wall, ctx.teardown_wall), "ports": ctx.client_ports(), "exchanges": 5}
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
    jittered = None
    if "robust" in ctx.impls:
        jittered = jitter_part(ctx)
    client_capture.stop()
    server_capture.stop()
    prove_delays(ctx, client_capture.pcap, server_capture.pcap, "", fixed, 0)
    if jittered is not None:
        prove_delays(ctx, client_capture.pcap, server_capture.pcap, f" ± {JITTER_MS}", jittered, JITTER_MS)


def jitter_part(ctx):
    """Eight round trips through latency ± jitter on one robust connection; returns what the proofs look at."""
    # The fault the subjects met stays the run's fault (its moment, its wall clock): this second
    # toxic only gets a window of its own.
    fault_at, fault_wall = ctx.fault_at, ctx.fault_wall
    asked = time.time()
    toxic = ctx.apply("latency", latency=LATENCY_MS, jitter=JITTER_MS)
    start = max(asked, ctx.fault_wall or asked)
    ports, rtts = set(), []
    try:
        host, port = ctx.target()
        with RobustConnection.connect(host, port, ctx.config) as conn:
            ports.add(conn.socket.getsockname()[1])
            for seq in range(8):
                started = ctx.now()
                conn.request(body(seq, 100))
                rtts.append(round(ctx.now() - started, 4))
    finally:
        end = time.time()
        toxic.clear()
        ctx.fault_at, ctx.fault_wall = fault_at, fault_wall
    low, high = (LATENCY_MS - JITTER_MS) / 1000, (LATENCY_MS + JITTER_MS) / 1000
    ctx.facts["robust_jitter_rtts_s"] = rtts
    ctx.mark("client[robust]", f"{len(rtts)} round trips with ±{JITTER_MS} ms jitter",
             min_s=min(rtts), max_s=max(rtts))
    ctx.check("robust", f"with jitter every RTT within {LATENCY_MS}±{JITTER_MS} ms (+20 % slack), and they vary",
              all(0.8 * low <= r <= 1.2 * high for r in rtts) and max(rtts) - min(rtts) > 0.01,
              f"RTTs {min(rtts) * 1000:.0f}–{max(rtts) * 1000:.0f} ms")
    return {"window": Window(start, end), "ports": ports, "exchanges": 8}


def _ms(values):
    if not values:
        return "none"
    return (f"{min(values) * 1000:.1f}–{max(values) * 1000:.1f} ms (median {statistics.median(values) * 1000:.1f})"
            f" over {len(values)}")


def prove_delays(ctx, client_pcap, server_pcap, label, part, jitter_ms):
    """The delay on the wire, on the connections of one part, after its toxic was in place.

    Each request → reply is measured where the client sees it (client.pcap), and split by
    direction with the server's side (server.pcap, Toxiproxy's own connection to the server):
    the toxic sits on the replies, so the request must reach the server at once and the reply
    must take the delay from the server to the client.
    """
    window, latency, jitter = part["window"], LATENCY_MS / 1000, jitter_ms / 1000
    low, high = 0.95 * (latency - jitter), 1.2 * (latency + jitter)
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=part["ports"])
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    round_trips, splits, details, split_details = [], [], [], []
    for conn, leg in pair(subjects, legs, within=0.5):
        seen = exchanges(conn, window)
        delays = [reply - request for request, reply in seen]
        ok = (len(delays) >= part["exchanges"] and min(delays) >= low
              and statistics.median(delays) <= high
              and (not jitter or max(delays) - min(delays) >= jitter / 5))
        round_trips.append(ok)
        details.append(f"{conn.client}: {_ms(delays)}")
        at_server = exchanges(leg, window) if leg is not None else []
        up = [s_req - c_req for (c_req, _), (s_req, _) in zip(seen, at_server)]
        down = [c_rep - s_rep for (_, c_rep), (_, s_rep) in zip(seen, at_server)]
        splits.append(leg is not None and len(at_server) == len(seen) and len(down) >= part["exchanges"]
                      and statistics.median(up) <= 0.1 * latency and min(down) >= low
                      and statistics.median(down) <= high)
        split_details.append(f"{conn.client} via {leg.client if leg else 'no leg to the server'}: "
                             f"to the server {_ms(up)}, back to the client {_ms(down)}")
    expected = f"{part['exchanges']} round trips each ≥ {low * 1000:.0f} ms, median ≤ {high * 1000:.0f} ms" + (
        f", spread ≥ {jitter_ms / 5:.0f} ms" if jitter else "")
    window_text = window.describe(ctx.facts.get("fault_wall"))
    ctx.prove(f"on the wire every round trip after the toxic took {LATENCY_MS}{label} ms (client side)",
              bool(round_trips) and all(round_trips) and len(round_trips) == max(1, len(part["ports"])),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} (expected {expected}; "
              f"window {window_text})")
    ctx.prove(f"the {LATENCY_MS}{label} ms sat on the server's replies: requests reached the server at once",
              bool(splits) and all(splits) and len(splits) == max(1, len(part["ports"])),
              f"{'; '.join(split_details) or 'no subject connection in client.pcap'} (expected to the server "
              f"median ≤ {0.1 * latency * 1000:.0f} ms, back ≥ {low * 1000:.0f} ms)")
