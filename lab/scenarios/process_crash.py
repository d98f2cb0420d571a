"""The server process is killed (SIGKILL) in the middle of a conversation."""

from lab.addresses import DEFAULT_PORT
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
    capture = ctx.capture("server")
    crash = {}

    def fault():
        crash["handle"] = ctx.apply("crash", server="threaded")

    ctx.side_by_side(converse(before=2, after=1), fault=fault)
    new_pid = crash["handle"].wait_restarted()
    summary = capture.stop()
    conns = summary.connections_to(DEFAULT_PORT)
    ctx.prove("the server's kernel closed every connection (FIN or RST)",
              conns and all(c.server_to_client.fin.count + c.server_to_client.rst.count >= 1 for c in conns),
              ", ".join(f"{c.client}: FIN {c.server_to_client.fin.count} RST {c.server_to_client.rst.count}"
                        for c in conns))
    ctx.prove("the supervisor restarted the server", bool(new_pid), f"new pid {new_pid}")
