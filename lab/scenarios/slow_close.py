"""The server's close reaches the client a second late (Toxiproxy slow_close)."""

import dataclasses
import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import FIN, RST, Window
from lab.evidence.legs import CLIENT, SERVER, connections, pair, proxy_legs
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
    # Both sides capture for the whole run: the server's FIN to the proxy, the proxy's FIN to the client.
    client_capture = ctx.capture("client")
    server_capture = ctx.capture("server")
    behave = ctx.apply("behave", mode="close", after=1)
    ctx.apply("slow-close", delay=DELAY_MS)
    # No heartbeat while it waits for the delayed FIN: a PING sent 1 s into the wait races the toxic's
    # 1000 ms delay, reaches a server that has closed, and comes back as an RST that Toxiproxy passes on
    # at once (seen in full suite runs as PeerReset). What this scenario shows is the close, not a PING.
    ctx.side_by_side(worker, configs={"robust": dataclasses.replace(ctx.config, heartbeat_interval=None)})
    delay = ctx.outcomes["robust"].measurements.get("close_delay_s")
    ctx.check("robust", "the close came about a second after the reply",
              delay is not None and DELAY_MS / 1000 * 0.9 <= delay <= DELAY_MS / 1000 + 0.5,
              f"close {delay} s after the reply; toxic delay {DELAY_MS} ms")
    client_capture.stop()
    server_capture.stop()
    behave.prove_in_use(ctx, DEFAULT_PORT)
    prove_server_closed(ctx, client_capture.pcap, server_capture.pcap)
    prove_close_held(ctx, client_capture.pcap, server_capture.pcap)


def prove_server_closed(ctx, client_pcap, server_pcap):
    """The behaviour on the wire, on Toxiproxy's connection to the server (server.pcap): one message in,
    one reply out, then the server's FIN (a close, not an abort: no RST before it), before the proxy closed
    its side. A PING the client sends while the toxic holds the FIN back may still draw an RST after it."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    oks, details = [], []
    for conn, leg in pair(subjects, legs):
        fin = leg.first(SERVER, FIN, window) if leg is not None else None
        if fin is None:
            oks.append(False)
            details.append(f"{conn.client}: no FIN from the server on the proxy's connection")
            continue
        asked = len([s for s in leg.sent(CLIENT, window, data=True) if s.time_ns < fin.time_ns])
        answered = len([s for s in leg.sent(SERVER, window, data=True) if s.time_ns <= fin.time_ns])
        proxy_end = leg.first(CLIENT, FIN) or leg.first(CLIENT, RST)
        first = proxy_end is None or fin.time_ns < proxy_end.time_ns
        resets = [s for s in leg.sent(SERVER, flags=RST) if s.time_ns <= fin.time_ns]
        oks.append(asked == answered == 1 and first and not resets)
        details.append(f"{conn.client} via {leg.client}: {asked} message in, {answered} reply out, then the "
                       f"server's FIN, {'before' if first else 'after'} the proxy's own close; "
                       f"{len(resets)} RST from the server before its FIN")
    ctx.prove("the server closed right after its first reply (FIN, no RST before it), before the proxy closed",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              "; ".join(details) or "no subject connection in client.pcap")


def prove_close_held(ctx, client_pcap, server_pcap):
    """The slow_close toxic on the wire: the server's FIN reaches the proxy (server.pcap, Toxiproxy's own
    connection), and the proxy's FIN reaches the client DELAY_MS later (client.pcap), before the client closes."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    low, high = 0.95 * DELAY_MS / 1000, DELAY_MS / 1000 + 0.5
    oks, details = [], []
    for conn, leg in pair(subjects, legs):
        server_fin = leg.first(SERVER, FIN, window) if leg is not None else None
        proxy_fin = conn.first(SERVER, FIN, window)
        if server_fin is None or proxy_fin is None:
            oks.append(False)
            details.append(f"{conn.client}: " + ("no FIN from the server to the proxy" if server_fin is None
                                                 else "no FIN from the proxy to the client"))
            continue
        own_close = conn.first(CLIENT, FIN) or conn.first(CLIENT, RST)
        first = own_close is None or proxy_fin.time_ns < own_close.time_ns
        held = (proxy_fin.time_ns - server_fin.time_ns) / 1e9
        oks.append(low <= held <= high and first)
        details.append(f"{conn.client} via {leg.client}: the proxy's FIN {held * 1000:.0f} ms after the server's, "
                       + ("before" if first else "after") + " the client's own close")
    ctx.prove(f"on the wire the proxy passed the server's FIN on {DELAY_MS} ms late",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} (expected "
              f"{low * 1000:.0f}–{high * 1000:.0f} ms; window {window.describe(ctx.fault_wall)})")
