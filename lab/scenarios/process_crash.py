"""The server process is killed (SIGKILL) in the middle of a conversation."""

import time

from lab.inlab.processes import serving
from lab.inlab.proofs import per_connection, prove_restarted, server_closed_first, subjects
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import converse

NAME = "process-crash"
TITLE = "Server process crash"
HOWTO = "When Sockets Die"
WIRE = """
SIGKILL ends the server process without a chance to clean up, but its host's kernel is
alive and closes every socket the process held: a FIN when nothing was left unread, an RST
when data was still queued. The client hears about it at once. The supervisor starts a new
server half a second later; the old connection is gone for good.
"""
INJECTION = "The server-agent sends SIGKILL to the threaded server process between two messages."
PATH = "direct"
EXPECT = {
    "robust": Expect("error", ("PeerClosed", "PeerReset", "BrokenPipe"), within=fixed(1.0),
                     note="the kernel's FIN or RST arrives at once"),
    "naive": Expect("error", ("RuntimeError", "ConnectionResetError", "BrokenPipeError"), within=1.0),
}
REMEMBER = "A crashed process on a living host is loud: its kernel closes (FIN) or resets (RST) for it."
LOOK_FOR = "The server's kernel closes for the dead process: a FIN, or an RST if our third message was already queued unread. Half a second later the supervisor's new server is listening again."


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    crash = {}

    def fault():
        # Which process serves the clients' port, and when the kill was asked for: the proofs
        # below are about that process and what its kernel did from that moment on.
        crash["before"] = serving(ctx.server_agent.processes(), port)
        crash["asked"] = time.time()
        crash["handle"] = ctx.apply("crash", server="threaded")

    ctx.side_by_side(converse(before=2, after=1), fault=fault)
    crash["handle"].wait_restarted()
    capture.stop()
    ctx.prove_each(lambda c: per_connection(
        c, "the dead server's kernel closed each connection (FIN or RST) before the client did",
        subjects(c, capture.pcap, port, EXPECT), lambda conn: server_closed_first(conn, crash["asked"])))
    prove_restarted(ctx, port, crash["before"], crash["asked"])

