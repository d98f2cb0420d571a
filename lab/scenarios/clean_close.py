"""The server closes the connection cleanly, between two messages."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import converse

NAME = "clean-close"
TITLE = "Clean close between messages"
HOWTO = "Using a Socket"
WIRE = """
After answering the second message the server calls close(). Its kernel sends a FIN: an
orderly "no more data from me". The client's next recv returns 0 bytes. Nothing is lost
and nothing is cut; the only question is whether the code notices that the conversation
is over instead of treating an empty read as a message.
"""
INJECTION = "The threaded server is told (control port) to close each connection after 2 messages."
PATH = "direct"
EXPECT = {
    "robust": Expect("error", ("PeerClosed",), within=fixed(0.5), note="EOF at a frame boundary is reported at once"),
    "naive": Expect("error", ("RuntimeError",), within=0.5, note="the HOWTO's 'socket connection broken'"),
}
REMEMBER = "recv() returning b'' is the peer's FIN: the conversation is over, not an empty message."
LOOK_FOR = "In `server.pcap`, each connection ends with a FIN from the server right after its second reply; the client's FIN follows. No RST."


def run(ctx):
    capture = ctx.capture("server")
    ctx.apply("behave", mode="close", after=2)
    ctx.side_by_side(converse(before=2, after=1))
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("one connection per implementation was captured", len(conns) == len(ctx.impls),
              f"{len(conns)} connections")
    ctx.prove("the server sent a FIN on every connection", conns and all(c.server_to_client.fin.count >= 1
                                                                         for c in conns),
              ", ".join(f"{c.client}: FIN {c.server_to_client.fin.count}" for c in conns))
    ctx.prove("the server sent no RST before its FIN",
              all(c.server_to_client.rst.first is None or c.server_to_client.fin.first is not None and
                  c.server_to_client.fin.first <= c.server_to_client.rst.first for c in conns),
              ", ".join(f"{c.client}: RST {c.server_to_client.rst.count}" for c in conns))
