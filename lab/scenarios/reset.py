"""The connection is reset: an RST arrives instead of data (Toxiproxy reset_peer)."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import connect_then_exchange

NAME = "reset"
TITLE = "Connection reset"
HOWTO = "When Sockets Die"
WIRE = """
When the client's first message reaches the proxy, the proxy closes the client's connection
with SO_LINGER 0, so the client's kernel receives a real RST: the peer has thrown the
connection away, with whatever was in flight. The next recv fails with ECONNRESET. This RST
is made by Toxiproxy itself on the client's side; an RST from the server would reach the
client as a FIN, which is why the reset must be injected here.
"""
INJECTION = ("A Toxiproxy reset_peer toxic (downstream, timeout 0) on the threaded proxy, in place before "
             "the client connects (it resets only connections opened after it exists).")
PATH = "proxied"
EXPECT = {
    "robust": Expect("error", ("PeerReset",), within=fixed(1.0)),
    "naive": Expect("error", ("ConnectionResetError",), within=1.0, note="unhandled, as the HOWTO's code would"),
}
REMEMBER = "An RST means the peer discarded the connection: whatever was in flight is gone."
LOOK_FOR = "In `client.pcap`, the proxy's RST follows the client's first request; no reply data at all."


def run(ctx):
    capture = ctx.capture("client")
    ctx.apply("reset-peer", timeout=0)
    ctx.side_by_side(connect_then_exchange())
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("an RST from the proxy reached the client on every connection",
              conns and all(c.server_to_client.rst.count >= 1 for c in conns),
              ", ".join(f"{c.client} ← {c.server}: RST {c.server_to_client.rst.count}" for c in conns))
