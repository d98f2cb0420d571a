"""The server stops accepting and its listen backlog fills up."""

import socket

from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import connect_then_exchange

NAME = "backlog-full"
TITLE = "Listen backlog full"
HOWTO = "Creating a Socket"
WIRE = """
The server process stops calling accept(). The kernel still completes handshakes and parks
the new connections in the listen queue, up to the backlog given to listen(). Once the
queue is full, Linux silently drops further SYNs (it does not refuse them), so the next
client's connect() sees nothing at all and retries its SYN like it would into a black hole.
"""
INJECTION = ("The threaded server (listen backlog 8) is told to stop accepting; the lab fills its queue "
             "with idle connections, then the clients connect.")
PATH = "direct"
WATCHDOG = 7.0
EXPECT = {
    "robust": Expect("error", ("ConnectTimeout",), within=bound("connect", 0.5),
                     note="a full backlog drops SYNs on Linux, so it is a timeout, not a refusal; 3 s + 0.5 s"),
    "naive": Expect("blocked", note="connect() keeps retrying its SYN for a minute or two"),
}
REMEMBER = "A full listen queue on Linux looks like a black hole, not a refusal."
LOOK_FOR = "The filler connections complete their handshakes; the clients' SYNs after them are never answered (ListenOverflows counts them)."


def fill_backlog(ctx, host, port, limit=64):
    fillers = []
    for _ in range(limit):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((host, port))
        except OSError:
            s.close()
            break
        fillers.append(s)
    ctx.on_cleanup(lambda: [f.close() for f in fillers])
    ctx.mark("lab", "listen queue full", idle_connections=len(fillers))
    return fillers


def run(ctx):
    before = ctx.server_agent.tcp_stats()
    accepted_before = ctx.server_stats("threaded")["accepted"]
    ctx.apply("behave", accepting=False)
    host, port = ctx.target()
    fillers = fill_backlog(ctx, host, port)
    accepted_full = ctx.server_stats("threaded")["accepted"]
    # The clients' clock starts now, with the queue full (filling it took a while).
    ctx.fault_at = ctx.mark("lab", "clients connect to the full queue")
    ctx.side_by_side(connect_then_exchange())
    after = ctx.server_agent.tcp_stats()
    overflows = after["tcp_ext"]["ListenOverflows"] - before["tcp_ext"]["ListenOverflows"]
    accepted_after = ctx.server_stats("threaded")["accepted"]
    ctx.prove("the listen queue overflowed (SYNs dropped by the kernel)", overflows > 0,
              f"ListenOverflows grew by {overflows}; {len(fillers)} connections filled the queue")
    ctx.prove("the server accepted nothing meanwhile", accepted_after == accepted_full == accepted_before,
              f"accepted {accepted_before} before, {accepted_full} with the queue full, {accepted_after} after")
