"""Nobody listens on the server's port: the host answers the SYN with an RST."""

from lab.evidence.anchor import ACK, RST, SYN, Window, segments
from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import connect_then_exchange

NAME = "refused"
TITLE = "Connection refused"
HOWTO = "Creating a Socket"
WIRE = """
The server's host is up but no process listens on the port. Its kernel answers the
client's SYN with an RST at once, and connect() fails with ECONNREFUSED within a round trip.
This must be seen on a direct path: Toxiproxy accepts a client before it dials the server,
so through the proxy a refused server looks like a connection that opens and then closes.
"""
INJECTION = "The server-agent tells the supervisor (SIGUSR1) to stop every server and keep them stopped."
PATH = "direct"
EXPECT = {
    "robust": Expect("error", ("ConnectRefused",), within=fixed(0.5)),
    "naive": Expect("error", ("ConnectionRefusedError",), within=0.5),
}
REMEMBER = "Refused is fast and certain: something answered, and it said no."
LOOK_FOR = "Each SYN is answered by an RST from the server's kernel within a fraction of a millisecond."


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    ctx.apply("refuse")
    ctx.side_by_side(connect_then_exchange())
    capture.stop()
    prove_refused(ctx, capture.pcap, port)


def prove_refused(ctx, pcap, port):
    # Every connection attempt made after the fault: a SYN to the port, answered by an RST that
    # acknowledges that very SYN, and never a SYN-ACK. Robust's socket is gone by the time the
    # lab could ask its port, so the attempts are counted: one at least per judged implementation.
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    syns = [s for s in segments(pcap, window, dst_port=port, flags=SYN) if not s.has(ACK)]
    answers = segments(pcap, window, src_port=port, flags=RST)
    accepted = segments(pcap, window, src_port=port, flags=SYN | ACK)
    refused, delays = set(), []
    for syn in syns:
        rst = next((r for r in answers if r.dst == syn.src and r.ack == (syn.seq + 1) % 2**32
                    and r.time_ns >= syn.time_ns), None)
        if rst is not None:
            refused.add(syn.src.port)
            delays.append((rst.time_ns - syn.time_ns) / 1e6)
    tried = {s.src.port for s in syns}
    impls = judged(ctx, EXPECT)
    noted = set().union(*(ctx.client_ports(impl) for impl in impls))
    ok = len(tried) >= len(impls) and refused == tried and not accepted and noted <= tried
    ctx.prove("every connect() after the fault was answered by the server's kernel with an RST", ok,
              f"{len(syns)} SYNs from ports {sorted(tried)}; RST for {sorted(refused)} "
              f"(within {max(delays, default=0):.2f} ms); {len(accepted)} SYN-ACKs; "
              f"the clients' own ports {sorted(noted)}; window {window.describe(ctx.fault_wall)}")
