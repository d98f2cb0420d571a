"""The server stops accepting and its listen backlog fills up."""

import socket
import time

from lab.evidence.anchor import ACK, RST, SYN, Window, segments
from lab.inlab.processes import server_named
from lab.inlab.proofs import judged
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
BACKLOG = 8         # compose.yaml starts the threaded server with --backlog=8; Linux queues one more
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
    host, port = ctx.target()
    server = server_named(port)
    capture = ctx.capture("server", port)
    before = ctx.server_agent.tcp_stats()
    behave = ctx.apply("behave", accepting=False)
    # Counted once the server has stopped accepting: what it took before is not the queue's.
    accepted_before = ctx.server_stats(server)["accepted"]
    fillers = fill_backlog(ctx, host, port)
    filler_ports = {f.getsockname()[1] for f in fillers}
    accepted_full = ctx.server_stats(server)["accepted"]
    # The clients' clock starts now, with the queue full (filling it took a while).
    ctx.fault_at = ctx.mark("lab", "clients connect to the full queue")
    clients_wall = time.time()
    ctx.side_by_side(connect_then_exchange())
    capture.stop()
    after = ctx.server_agent.tcp_stats()
    accepted_after = behave.prove_in_use(ctx, port)["accepted"]
    ctx.prove(f"the listen queue filled up at the backlog ({BACKLOG} + 1) and the server accepted none of it",
              0 < len(fillers) <= BACKLOG + 1 and accepted_after == accepted_full == accepted_before,
              f"{len(fillers)} idle connections completed their handshakes before the next one got no answer; "
              f"accepted {accepted_before} before, {accepted_full} with the queue full, {accepted_after} after")
    dropped = prove_dropped(ctx, capture.pcap, port, Window(clients_wall, ctx.teardown_wall), filler_ports)
    overflows = after["tcp_ext"]["ListenOverflows"] - before["tcp_ext"]["ListenOverflows"]
    ctx.prove("the kernel counted each dropped SYN as a listen queue overflow", dropped > 0 and overflows >= dropped,
              f"ListenOverflows grew by {overflows}; the capture saw {dropped} SYNs from the clients go unanswered")


def prove_dropped(ctx, pcap, port, window, filler_ports):
    # Every SYN the clients sent to the full queue: no SYN-ACK, no RST, only the client's own
    # retries. Robust's socket is gone before the lab could ask its port, so the clients are
    # told apart from the idle fillers by port: one retrying at least per judged implementation.
    syns = [s for s in segments(pcap, window, dst_port=port, flags=SYN)
            if not s.has(ACK) and s.src.port not in filler_ports]
    tried = {}
    for syn in syns:
        tried[syn.src.port] = tried.get(syn.src.port, 0) + 1
    answered = [s for s in segments(pcap, window, src_port=port, peer_ports=set(tried))
                if s.has(SYN) or s.has(RST)]
    retried = {p for p, n in tried.items() if n >= 2}
    impls = judged(ctx, EXPECT)
    noted = set().union(*(ctx.client_ports(impl) for impl in impls))
    ok = len(retried) >= len(impls) and noted <= retried and not answered
    ctx.prove("the clients' SYNs were dropped silently: no SYN-ACK, no RST, only their retries", ok,
              f"SYNs per client port {dict(sorted(tried.items()))}; {len(answered)} SYN-ACK or RST back; "
              f"the clients' own ports {sorted(noted)}; window {window.describe(window.start)}")
    return len(syns)
