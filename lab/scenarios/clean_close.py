"""The server closes the connection cleanly, between two messages."""

from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER
from lab.evidence.pcap import FIN, RST
from lab.inlab.proofs import earliest, judged, per_connection, subjects
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "clean-close"
TITLE = "Clean close between messages"
HOWTO = "Using a Socket"
WIRE = """
After answering the second message the server calls close(). Its kernel sends a FIN: an
orderly "no more data from me". The client, waiting for the server's next message, gets 0
bytes from recv. Nothing is lost and nothing is cut; the only question is whether the code
notices that the conversation is over instead of treating an empty read as a message. (Had
the client written a third message instead, the server's kernel would have answered it with
an RST: nobody is left on that socket to read it.)
"""
INJECTION = "The threaded server is told (control port) to close each connection after 2 messages."
PATH = "direct"
AFTER = 2
EXPECT = {
    "robust": Expect("error", ("PeerClosed",), within=fixed(0.5), note="EOF at a frame boundary is reported at once"),
    "naive": Expect("error", ("RuntimeError",), within=0.5, note="the HOWTO's 'socket connection broken'"),
}
REMEMBER = "recv() returning b'' is the peer's FIN: the conversation is over, not an empty message."
LOOK_FOR = "In `server.pcap`, each connection ends with a FIN from the server right after its second reply; the client's FIN follows. No RST."


def worker(ctx, subject, outcome):
    actor = f"client[{subject.impl}]"
    subject.connect()
    for seq in range(1, AFTER + 1):
        ctx.exchange(subject, outcome, body(seq, 100))
    # Its time bound counts from here: the FIN is due now, right behind the second reply. The
    # connect and the two round trips before it are not the close being noticed (and on a busy
    # machine a sandboxed program's connect alone can take longer than the bound).
    ctx.ready()
    ctx.mark(actor, "waiting for the server's next message")
    subject.receive()   # the server's FIN: recv returns b''


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    behave = ctx.apply("behave", mode="close", after=AFTER)
    ctx.side_by_side(worker)
    capture.stop()
    stats = behave.prove_in_use(ctx, port)
    closed = stats.get("closed", {})
    impls = judged(ctx, EXPECT)
    ctx.prove(f"the server on port {port} closed each connection itself", closed.get("close", 0) >= len(impls) > 0,
              f"connections ended by the server's close: {closed.get('close', 0)}, for {len(impls)} clients; "
              f"all endings {closed}")
    ctx.prove_each(prove_closes, capture.pcap, port)


def prove_closes(ctx, pcap, port):
    since = Window(ctx.fault_wall, None)
    conns = subjects(ctx, pcap, port, EXPECT)
    per_connection(ctx, f"the server's FIN came right after its reply to message {AFTER}", conns,
                   lambda conn: fin_after_replies(conn, since))
    per_connection(ctx, "the client's FIN followed the server's, with no RST from the server before it", conns,
                   lambda conn: client_fin_follows(conn, since))


def fin_after_replies(conn, since):
    # Before its FIN, and before the client closed, the server had read AFTER messages and
    # answered each, and the FIN sits right at the end of its data: nothing cut short, nothing after.
    fin = conn.first(SERVER, FIN, since)
    if fin is None:
        return False, "no FIN from the server"
    client_end = earliest(conn.first(CLIENT, FIN, since), conn.first(CLIENT, RST, since))
    first = client_end is None or fin.time_ns < client_end.time_ns
    asked = len([s for s in conn.sent(CLIENT, since, data=True) if s.time_ns < fin.time_ns])
    answered = len([s for s in conn.sent(SERVER, since, data=True) if s.time_ns <= fin.time_ns])
    at_end = conn.offset(SERVER, fin.seq + fin.payload_len) == conn.stream_end(SERVER)
    return (first and asked == answered == AFTER and at_end,
            f"{asked} messages in, {answered} replies out, then the server's FIN "
            f"({'at' if at_end else 'NOT at'} the end of its {conn.stream_end(SERVER)} bytes, "
            f"{'before' if first else 'after'} the client closed)")


def client_fin_follows(conn, since):
    fin = conn.first(SERVER, FIN, since)
    own = conn.first(CLIENT, FIN, since)
    ended = earliest(own, conn.first(CLIENT, RST, since))
    resets = [s for s in conn.sent(SERVER, since, flags=RST) if ended is None or s.time_ns <= ended.time_ns]
    ok = fin is not None and own is not None and own is ended and own.time_ns > fin.time_ns and not resets
    if fin is None or own is None:
        order = f"server FIN {'seen' if fin else 'none'}, client FIN {'seen' if own else 'none'}"
    else:
        gap = (own.time_ns - fin.time_ns) / 1e6
        order = f"client FIN {abs(gap):.3f} ms {'after' if gap > 0 else 'before'} the server's"
    return ok, (f"{order}; {len(resets)} RST from the server before the client's FIN, "
                f"{len(conn.sent(SERVER, since, flags=RST))} in all")
