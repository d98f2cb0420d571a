"""Write-write-read with Nagle on: every exchange waits for the server's delayed ACK."""

import socket
import statistics
import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER
from lab.inlab.proofs import subjects
from lab.inlab.scenario import Expect
from lab.sockets import framing
from lab.sockets.naive import TwoWritesSocket, make_message
from lab.inlab.workloads import body

NAME = "nagle-stall"
TITLE = "The Nagle and delayed-ACK stall"
HOWTO = "Performance"
WIRE = """
Nothing is broken: no loss, no delay on the network. A client writes each request as two
small pieces (a 5-byte header, then the payload) and then waits for the reply. The header
leaves at once. Nagle's algorithm holds the payload back: it is small and the header is not
acknowledged yet. The server's kernel, meanwhile, delays its ACK (Linux: about 40 ms), hoping
to send it with a reply, but the server cannot reply to half a request. So every exchange
waits for the delayed-ACK timer: about 40 ms each, where one write per request, or
TCP_NODELAY, costs a fraction of a millisecond.
"""
INJECTION = ("No fault: the workload is the fault. Each implementation makes 30 small exchanges (20-byte bodies) "
             "with the threaded server; naive-two-writes sends each request in two send() calls with Nagle on, "
             "robust sets TCP_NODELAY and sends each frame in one call.")
PATH = "direct"
EXCHANGES = 30
WARMUP = 5                 # the first exchanges run while the server's kernel is still in quick-ACK mode
FAST_MS = 10.0             # robust's median bound; measured well under 1 ms in the lab
STALL_MS = (30.0, 80.0)    # Linux's delayed-ACK timer is 40 ms (TCP_DELACK_MIN); measured ~41 ms
EXPECT = {
    "robust": Expect("completed", note=f"TCP_NODELAY and one send per frame: median exchange < {FAST_MS:g} ms"),
    "naive-two-writes": Expect("completed", note=f"two writes, Nagle on: median exchange "
                                                  f"{STALL_MS[0]:g}–{STALL_MS[1]:g} ms (the delayed ACK)"),
}
REMEMBER = "Small writes followed by a read meet Nagle and the delayed ACK: one write per message, or TCP_NODELAY."
LOOK_FOR = ("In server.pcap each naive-two-writes request starts with a 5-byte segment; the server's bare ACK for "
            "it leaves about 40 ms later, and the payload follows it at once. Robust's requests are one segment "
            "each, answered at once.")


def worker(ctx, subject, outcome):
    subject.connect()
    ctx.mark(f"client[{subject.impl}]", "connected", to=f"{subject.host}:{subject.port}")
    times = outcome.measurements.setdefault("exchange_s", [])
    for seq in range(1, EXCHANGES + 1):
        started = time.monotonic()
        ctx.exchange(subject, outcome, body(seq, 20))
        times.append(round(time.monotonic() - started, 5))


def run(ctx):
    capture = ctx.capture("server", DEFAULT_PORT)
    started = time.time()
    ctx.side_by_side(worker)
    nodelay = two_writes_with_nodelay(ctx)
    capture.stop()
    for impl in ctx.judged:
        times = ctx.outcomes[impl].measurements.get("exchange_s", [])[WARMUP:]
        median = statistics.median(times) * 1000 if times else float("nan")
        ctx.facts[f"{impl}_median_exchange_ms"] = round(median, 2)
        if impl == "robust":
            ok, want = median < FAST_MS, f"< {FAST_MS:g} ms"
        else:
            ok, want = STALL_MS[0] <= median <= STALL_MS[1], f"{STALL_MS[0]:g}–{STALL_MS[1]:g} ms"
        ctx.check(impl, f"median exchange time {want}", ok and len(times) == EXCHANGES - WARMUP,
                  f"median {median:.2f} ms over exchanges {WARMUP + 1}–{EXCHANGES} ({len(times)} measured)")
    ctx.facts["two_writes_nodelay_median_ms"] = nodelay
    ctx.prove("the same two writes with TCP_NODELAY set do not stall: the stall is Nagle's",
              nodelay < FAST_MS, f"median {nodelay:.2f} ms over exchanges {WARMUP + 1}–{EXCHANGES} "
              f"(bound {FAST_MS:g} ms)")
    conns = subjects(ctx, capture.pcap, DEFAULT_PORT, EXPECT)
    window = Window(started, ctx.teardown_wall)
    prove_delayed_ack(ctx, conns.get("naive-two-writes", []), window)
    prove_single_segments(ctx, conns.get("robust", []), window)


def two_writes_with_nodelay(ctx):
    """The lab's own two-writes client with TCP_NODELAY: the control that names Nagle as the cause."""
    host, port = ctx.target()
    sock = TwoWritesSocket(socket.create_connection((host, port), timeout=5.0))
    try:
        sock.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for seq in range(1, EXCHANGES + 1):
            started = time.monotonic()
            sock.mysend(make_message(seq, body(seq, 20)))
            sock.myreceive()
            times.append(time.monotonic() - started)
    finally:
        sock.close()
    return round(statistics.median(times[WARMUP:]) * 1000, 2)


def prove_delayed_ack(ctx, found, window):
    """Per request: the 5-byte header, the server's bare ACK ~40 ms later, the payload right after it."""
    ok, parts = bool(found), []
    for conn in found:
        stalls = []
        segments = [s for s in conn.segments if window.holds(s)]
        for i, seg in enumerate(segments):
            if seg.src != conn.client or seg.payload_len != framing.HEADER_SIZE:
                continue
            later = segments[i + 1:]
            ack = next((s for s in later if s.src == conn.server), None)
            payload = next((s for s in later if s.src == conn.client and s.payload_len > 0), None)
            if ack is None or payload is None or ack.payload_len != 0:
                continue
            stalls.append(((ack.time_ns - seg.time_ns) / 1e6, (payload.time_ns - ack.time_ns) / 1e6))
        waited = stalls[WARMUP:]
        ack_ms = statistics.median(a for a, _ in waited) if waited else 0.0
        gap_ms = statistics.median(g for _, g in waited) if waited else float("inf")
        good = (len(waited) >= (EXCHANGES - WARMUP) // 2 and STALL_MS[0] <= ack_ms <= STALL_MS[1]
                and 0 <= gap_ms < 5.0)
        ok = ok and good
        parts.append(f":{conn.client.port}: {len(stalls)} requests began with a {framing.HEADER_SIZE}-byte segment "
                     f"answered by a bare ACK; after the first {WARMUP}, the ACK came a median {ack_ms:.1f} ms after "
                     f"the header and the payload {gap_ms:.2f} ms after the ACK")
    ctx.prove("the server delayed its ACK of each request's header, and the client's payload waited for it",
              ok, "; ".join(parts) or "no naive-two-writes connection in server.pcap")


def prove_single_segments(ctx, found, window):
    """Robust's requests: one data segment each, so there is nothing for Nagle to hold."""
    ok, parts = bool(found), []
    for conn in found:
        sent = conn.sent(CLIENT, window, data=True)
        replies = conn.sent(SERVER, window, data=True)
        good = len(sent) == EXCHANGES and len(replies) >= EXCHANGES
        ok = ok and good
        parts.append(f":{conn.client.port}: {len(sent)} request segments for {EXCHANGES} requests, "
                     f"{len(replies)} reply segments")
    ctx.prove("robust sent each request as one segment", ok, "; ".join(parts) or "no robust connection")
