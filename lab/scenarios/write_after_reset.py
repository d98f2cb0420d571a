"""The peer resets the connection and the client keeps sending."""

import time

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "write-after-reset"
TITLE = "Write after reset"
HOWTO = "When Sockets Die"
WIRE = """
After two good exchanges the server's side answers everything with an RST. The client's
next send still succeeds locally: the bytes go into its send buffer and out on the wire,
and only the RST that comes back says the peer is gone. From then on every send fails
(ECONNRESET, then EPIPE). Careful code reports that on the very next send; nothing it was
asked to send may vanish without an error.
"""
INJECTION = (f"The server-agent rejects packets to port {DEFAULT_PORT} with a TCP reset (iptables REJECT "
             "--reject-with tcp-reset): a real RST on the client's wire, which Toxiproxy would turn into a FIN.")
PATH = "direct"
EXPECT = {
    "robust": Expect("error", ("PeerReset", "BrokenPipe"), within=fixed(1.0)),
    "naive": Expect("error", ("BrokenPipeError", "ConnectionResetError"), within=1.0,
                    note="unhandled, as the HOWTO's code would"),
}
REMEMBER = "After an RST, send() fails too: the first write after a reset only finds out."
LOOK_FOR = "After two good exchanges, each client segment to the server is answered by an RST."


def worker(ctx, subject, outcome):
    subject.connect()
    for seq in (1, 2):
        ctx.exchange(subject, outcome, body(seq, 100))
    ctx.ready()
    sends = outcome.measurements.setdefault("sends_after_reset", 0)
    for seq in range(3, 13):
        subject.send(body(seq, 100))
        sends += 1
        outcome.measurements["sends_after_reset"] = sends
        ctx.mark(f"client[{subject.impl}]", "send returned", seq=seq)
        time.sleep(0.05)  # let the RST that this send provokes come back


def run(ctx):
    capture = ctx.capture("server")
    ctx.side_by_side(worker, fault=lambda: ctx.apply("reject", port=DEFAULT_PORT))
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("RSTs reached the client after the fault", conns and all(c.server_to_client.rst.count >= 1
                                                                       for c in conns),
              ", ".join(f"{c.client}: RST {c.server_to_client.rst.count}" for c in conns))
    for impl in ctx.impls:
        sends = ctx.outcomes[impl].measurements.get("sends_after_reset", 0)
        ctx.check(impl, "the error came on the first or second send after the reset", sends <= 1,
                  f"{sends} sends returned before the error")
