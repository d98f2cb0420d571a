"""A 1 MiB message squeezed through a 500 KB/s link (Toxiproxy bandwidth)."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, connections, pair, proxy_legs
from lab.sockets import framing
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
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE   # the request's bytes on the wire
# A graded program must push at least half a second's worth through the limit (256 KiB at 500 KB/s),
# or the limit never mattered. (Small fixed messages carry at most 4096 of them per exchange.)
REACH_BYTES = 256 * 1024
# Room for small fixed-length messages, each its own round trip through the proxy; nothing here blocks.
WATCHDOG = 20.0
EXPECT = {
    "robust": Expect("completed", note="intact; throughput within ±15 % of the limit; partial sends seen"),
    "naive": Expect("completed", note="the send and recv loops keep going until every byte is handled"),
    "naive-single-recv": Expect("completed", corrupt=True, note="one recv returns a piece of the echo"),
}
REMEMBER = "send() and recv() handle what the buffers allow: loop until the whole message is through."
LOOK_FOR = ("In `server.pcap` the request reaches the server from the proxy spread over about two seconds, in "
            "bursts every few tens of milliseconds; on the client side, send() returns less than it was offered.")


def run(ctx):
    client_capture = ctx.capture("client")
    server_capture = ctx.capture("server")
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
    client_capture.stop()
    server_capture.stop()
    prove_rate(ctx, client_capture.pcap, server_capture.pcap)


def upstream_rate(leg, window):
    """(bytes, KB/s) the proxy passed to the server on this leg in ``window``.

    The toxic lets data out in bursts, each after a sleep of its size / rate; counting from
    the first segment's arrival, the bytes after it over the time they took is the rate.
    """
    data = leg.sent(CLIENT, window, data=True)    # Toxiproxy is this leg's client
    end = leg.stream_end(CLIENT, window)
    if len(data) < 2 or end is None:
        return end or 0, None
    first, last = data[0], data[-1]
    after_first = end - (leg.offset(CLIENT, first.seq + first.payload_len) or 0)
    seconds = (last.time_ns - first.time_ns) / 1e9
    return end, (after_first / seconds / 1000 if seconds > 0 else None)


def prove_rate(ctx, client_pcap, server_pcap):
    # The implementations ran one after the other, so each subject's own close ends its
    # part; the window opens when the toxic was in place.
    window = Window(ctx.fault_wall, None)
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    low, high = 0.85 * RATE_KBPS, 1.15 * RATE_KBPS
    oks, details = [], []
    for conn, leg in pair(subjects, legs):
        if leg is None:
            oks.append(False)
            details.append(f"{conn.client}: no connection from the proxy to the server")
            continue
        sent, rate = upstream_rate(leg, window)
        oks.append(sent >= FRAME and rate is not None and low <= rate <= high)
        details.append(f"{conn.client} via {leg.client}: {sent} bytes to the server at "
                       + (f"{rate:.0f} KB/s" if rate is not None else "no measurable rate"))
    ctx.prove(f"on the wire the proxy passed the client's bytes to the server at {RATE_KBPS} KB/s ±15 %",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} "
              f"(expected {FRAME} bytes per connection at {low:.0f}–{high:.0f} KB/s, from server.pcap)")
