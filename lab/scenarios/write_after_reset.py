"""The peer resets the connection and the client keeps sending."""

import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import ACK, RST, Window, first, segments
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


QUIET_S = 0.3


def worker(ctx, subject, outcome):
    subject.connect()
    for seq in (1, 2):
        ctx.exchange(subject, outcome, body(seq, 100))
    # Let the client's kernel send its delayed ACK of the last echo (Linux holds one at most 200 ms)
    # before the rule goes in: an ACK that meets the rule is reset before the fault is on record, and
    # the sends after it then fail with nothing on the wire in the window (seen once in a full run).
    time.sleep(QUIET_S)
    ctx.ready()
    sends = outcome.measurements.setdefault("sends_after_reset", 0)
    for seq in range(3, 13):
        subject.send(body(seq, 100))
        sends += 1
        outcome.measurements["sends_after_reset"] = sends
        ctx.mark(f"client[{subject.impl}]", "send returned", seq=seq)
        time.sleep(0.05)  # let the RST that this send provokes come back


def run(ctx):
    capture = ctx.capture("client")
    handle = {}

    def fault():
        handle["reject"] = ctx.apply("reject", port=DEFAULT_PORT)

    ctx.side_by_side(worker, fault=fault)
    rejected = handle["reject"].matched("in", target="REJECT")
    capture.stop()
    ctx.prove_each(prove_resets, capture.pcap, rejected)
    for impl in ctx.impls:
        sends = ctx.outcomes[impl].measurements.get("sends_after_reset", 0)
        ctx.check(impl, "the error came on the first or second send after the reset", sends <= 1,
                  f"{sends} sends returned before the error")


def prove_resets(ctx, pcap, rejected):
    """The RSTs the subjects got came from the rule, after the fault, as answers to their own
    segments: not the teardown's, which would follow the client's FIN after the window."""
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    ports = ctx.client_ports()
    sent = segments(pcap, win, dst_port=DEFAULT_PORT, peer_ports=ports)
    ctx.prove("the REJECT rule answered the client's segments after the fault",
              rejected > 0 and bool(sent),
              f"REJECT (tcp-reset) on INPUT matched {rejected} packets; the subjects sent {len(sent)} segments "
              f"in {win.describe(ctx.fault_wall)}")
    found = {}
    for port in sorted(ports):
        asked = first([s for s in sent if s.src.port == port], ACK)   # established: every segment has ACK
        rst = first(segments(pcap, win, src_port=DEFAULT_PORT, peer_ports={port}), RST)
        found[port] = (asked, rst)
    ctx.prove("an RST from the server's port answered every subject connection after the fault",
              len(found) == len(ctx.judged)
              and all(rst is not None and asked is not None and rst.time_ns >= asked.time_ns
                      for asked, rst in found.values()),
              ", ".join(f":{port}: first segment after the fault {_at(ctx, asked)}, first RST back {_at(ctx, rst)}"
                        for port, (asked, rst) in found.items()) + " (client's interface)")

def _at(ctx, segment):
    """When a segment was captured, in ms after the fault."""
    return "never" if segment is None else f"+{(segment.time_ns / 1e9 - ctx.fault_wall) * 1000:.1f} ms"
