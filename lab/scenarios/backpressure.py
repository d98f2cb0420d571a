"""The server stops reading: the client's sends fill every buffer and stall."""

import time

from lab.evidence.anchor import ACK, RST, SYN, Window
from lab.evidence.legs import SERVER
from lab.inlab.proofs import per_connection, seconds_after, subjects
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
PROBES = 1          # answers to the client's window probes, at the least, after the window first shut
EXPECT = {
    "robust": Expect("error", ("SendStalled",), within=bound("send_stall", 6.0),
                     note="filling both kernels' buffers (they grow as data arrives) + write timeout 2 s"),
    "naive": Expect("blocked", note="send() blocks for as long as the peer does not read"),
}
REMEMBER = "A peer that stops reading stops your sends too: writes need a deadline as much as reads."
LOOK_FOR = ("`server.pcap` holds what the server sent: ACKs with a shrinking window, then window 0 on every one, "
            "the answers to the client's window probes included, until the lab closes the clients.")


def worker(ctx, subject, outcome):
    subject.connect()
    ctx.exchange(subject, outcome, body(1, 100))
    ctx.ready()
    payload = body(2, BIG)
    ctx.mark(f"client[{subject.impl}]", "sending 15 MiB to a peer that does not read")
    subject.send(payload)
    outcome.measurements["sent_all"] = True


def run(ctx):
    _, port = ctx.target()
    # Only what the server sends (its ACKs and windows): a server that did read would make the
    # other direction 15 MiB per client, more than a capture may hold.
    capture = ctx.capture("server", port, filter=f"tcp and src port {port}")
    behave = ctx.apply("behave", mode="stop_reading", after=1)
    stalled = {}

    def big_sends_begin():
        ctx.mark("lab", "server stopped reading after message 1")
        stalled["wall"] = time.time()

    ctx.side_by_side(worker, fault=big_sends_begin)
    capture.stop()
    behave.prove_in_use(ctx, port)
    # From the moment the clients began their 15 MiB sends until the lab began closing them.
    window = Window(stalled["wall"], ctx.teardown_wall)
    ctx.prove_each(prove_stalled, capture.pcap, port, window)
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


def prove_stalled(ctx, pcap, port, window):
    conns = subjects(ctx, pcap, port, EXPECT)
    per_connection(ctx, "the server's kernel shut its window and kept it shut through the client's window probes",
                   conns, lambda conn: window_shut(conn, window))
    per_connection(ctx, "the server's kernel took only part of the 15 MiB message and the server sent nothing back",
                   conns, lambda conn: took_part(conn, window))


def window_shut(conn, window):
    # A zero window that opens again is a slow reader; one that stays at 0, every ACK and every
    # answer to the client's window probes (sent with growing gaps: 0.2 s, 0.4 s, ...) saying 0,
    # is a reader that stopped.
    sent = [s for s in conn.sent(SERVER, window) if not s.has(RST)]
    first = next((i for i, s in enumerate(sent) if s.window == 0), None)
    if first is None:
        return False, f"{len(sent)} segments from the server, none with window 0"
    shut = sent[first:]
    reopened = [s for s in shut if s.window != 0]
    took_more = [s for s in shut if s.ack != shut[0].ack]
    lasted = (shut[-1].time_ns - shut[0].time_ns) / 1e9
    return (not reopened and not took_more and len(shut) - 1 >= PROBES,
            f"window 0 from {seconds_after(shut[0], window.start)} on, then {len(shut) - 1} more answers with "
            f"window 0 over {lasted:.1f} s; {len(reopened)} with the window open again, "
            f"{len(took_more)} acknowledging more data")


def took_part(conn, window):
    synack = conn.first(SERVER, SYN)
    acks = conn.sent(SERVER, window, flags=ACK)
    data = sum(s.payload_len for s in conn.sent(SERVER, window, data=True))
    if synack is None or not acks:
        return False, "no handshake or no ACK from the server in the capture"
    # The SYN-ACK acknowledges the client's SYN: ACK numbers past it count the client's bytes.
    took = max((s.ack - synack.ack) % 2**32 for s in acks)
    return (took < BIG and data == 0,
            f"the server's kernel acknowledged {took} bytes in all (message 1 included) of a {BIG}-byte body; "
            f"{data} bytes sent back")
