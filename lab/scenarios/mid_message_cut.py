"""The stream is cut in the middle of a reply (Toxiproxy limit_data)."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import FIN, RST, Window
from lab.evidence.legs import CLIENT, SERVER, connections
from lab.sockets import framing
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import converse

NAME = "mid-message-cut"
TITLE = "Mid-message cut"
HOWTO = "Using a Socket"
WIRE = """
Toxiproxy passes exactly two and a half replies' worth of bytes from the server, then
closes the connection. The client's kernel sees an ordinary FIN, but it arrives in the
middle of a message: 500 bytes of a 1013-byte frame are all there will ever be. Careful
code says how much of what arrived; it never hands back the half message as if it were whole.
"""
SIZE = 1000
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE  # 1013 bytes on the wire per echo
CUT = 2 * FRAME + 500
INJECTION = (f"A Toxiproxy limit_data toxic (downstream, bytes {CUT}) on the threaded proxy, in place "
             "before the client connects.")
PATH = "proxied"
# A graded program must send at least this much, or its echoes never reach the cut.
REACH_BYTES = CUT
EXPECT = {
    "robust": Expect("error", ("IncompleteMessage",), within=fixed(1.0), detail={"received": 500, "expected": FRAME},
                     note="EOF inside a frame is reported with its byte counts"),
    "naive": Expect("error", ("RuntimeError",), within=1.0, note="'socket connection broken'"),
}
REMEMBER = "A FIN in the middle of a message is a broken message: report it, never return half."
LOOK_FOR = "Exactly 2526 bytes reach the client, then the proxy's FIN: two whole 1013-byte replies and 500 bytes of the third."


def run(ctx):
    capture = ctx.capture("client")
    ctx.apply("limit-data", bytes=CUT)
    ctx.side_by_side(converse(before=0, after=3, size=SIZE))
    capture.stop()
    ctx.prove_each(prove_cut, capture.pcap)
    if "robust" in ctx.impls:
        got = ctx.outcomes["robust"].measurements.get("bytes_received")
        ctx.prove("exactly the configured number of bytes reached the client before the cut", got == CUT,
                  f"robust received {got} bytes; limit {CUT}")
    for impl in ctx.impls:
        ctx.check(impl, "the two whole replies before the cut were intact", ctx.outcomes[impl].exchanges_ok == 2,
                  f"{ctx.outcomes[impl].exchanges_ok} intact replies")


def prove_cut(ctx, pcap):
    """On each subject's connection: the proxy's stream stopped at exactly CUT bytes, and its FIN sat right there."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    subjects = connections(pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    oks, details = [], []
    for conn in subjects:
        reached = conn.stream_end(SERVER, window)      # how far the proxy's bytes went
        fin = conn.first(SERVER, FIN, window)
        fin_at = conn.offset(SERVER, fin.seq) if fin is not None else None
        own_close = conn.first(CLIENT, FIN) or conn.first(CLIENT, RST)
        # The close must be the proxy's own, at the cut: before the client closed, and no byte after it.
        first_close = fin is not None and (own_close is None or fin.time_ns < own_close.time_ns)
        oks.append(reached == CUT and fin_at == CUT and first_close)
        details.append(f"{conn.client}: {reached} bytes from the proxy, its FIN at byte {fin_at}"
                       + (", before the client's own close" if first_close else
                          ", after the client's own close" if fin is not None else ", no FIN from the proxy"))
    ctx.prove(f"on the wire the proxy's stream stopped at exactly {CUT} bytes, then its FIN, on every connection",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} "
              f"(window {window.describe(ctx.fault_wall)})")
