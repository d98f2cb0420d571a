"""Nobody listens on the server's port: the host answers the SYN with an RST."""

from lab.addresses import DEFAULT_PORT
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
INJECTION = "The server-agent tells the supervisor (SIGUSR1) to stop both servers and keep them stopped."
PATH = "direct"
EXPECT = {
    "robust": Expect("error", ("ConnectRefused",), within=fixed(0.5)),
    "naive": Expect("error", ("ConnectionRefusedError",), within=0.5),
}
REMEMBER = "Refused is fast and certain: something answered, and it said no."
LOOK_FOR = "Each SYN is answered by an RST from the server's kernel within a fraction of a millisecond."


def run(ctx):
    capture = ctx.capture("server")
    ctx.apply("refuse")
    ctx.side_by_side(connect_then_exchange())
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("every SYN was answered with an RST", len(conns) >= len(ctx.impls) and all(
        c.client_to_server.syn.count >= 1 and c.server_to_client.rst.count >= 1 for c in conns),
        ", ".join(f"{c.client}: SYN {c.client_to_server.syn.count} RST {c.server_to_client.rst.count}"
                  for c in conns))
