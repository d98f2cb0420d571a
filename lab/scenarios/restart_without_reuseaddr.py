"""A server that closed first restarts while its old connections sit in TIME_WAIT: only SO_REUSEADDR gets the port.

This scenario judges server code (how a restarting server binds), not a client: its
implementations are the binders of lab.server.binding, run by the server-agent in the server's
network namespace, where the TIME_WAIT entries are. It is not gradable (``lab grade`` drives
client code, and the oracle has no "naive" for submitted code to run beside).
"""

import time

from lab.addresses import SERVER_PORTS, SERVER_HOST
from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER, connections
from lab.evidence.pcap import FIN, RST
from lab.inlab.proofs import earliest, seconds_after
from lab.inlab.scenario import Expect
from lab.inlab.workloads import body
from lab.sockets.robust import RobustConnection

NAME = "restart-without-reuseaddr"
TITLE = "Restart without SO_REUSEADDR"
HOWTO = "Creating a Socket"
WIRE = """
The side of a TCP connection that closes first keeps it for a while afterwards, in TIME_WAIT
(a minute on Linux), in case a last segment of it is still on its way. When a server stops,
it closes its connections first, so its own port is left with a TIME_WAIT entry for every
client it had. A new server process that binds that port without the SO_REUSEADDR option
is turned away with EADDRINUSE ("Address already in use") until the last entry expires;
with the option set, the kernel lets it bind at once, as long as no other socket is
listening on the port. Nothing is wrong on the wire: this is the kernel's own rule.
"""
INJECTION = ("Three connections of the lab's own to the forking server; the server-agent tells the supervisor "
             "(SIGUSR1) to stop every server, each closing its connections first; the lab's clients answer the FIN. "
             "Then the server-agent binds the server's port in the server's namespace, once per binder "
             "(lab.server.binding), before the supervisor restarts the servers.")
PATH = "direct"
SERVER = "forking"
CONNECTIONS = 3
SIZE = 100
TIME_WAIT_BOUND = 5.0
EXPECT = {
    # Server code is judged here, not a client: a binder binds the port as a restarting server would.
    "reuseaddr": Expect("completed", within=1.0, note="bind() succeeds at once despite TIME_WAIT"),
    "no-reuseaddr": Expect("error", ("OSError",), within=1.0, detail={"errno": "EADDRINUSE"},
                           note="bind() is refused at once while TIME_WAIT lasts"),
}
REMEMBER = "Set SO_REUSEADDR before bind() on a server's listening socket, or a quick restart fails for a minute."
LOOK_FOR = ("The server's FIN on each connection first, then the client's FIN and the server's last ACK; after "
            "that, nothing: the server's ends wait in TIME_WAIT, seen in /proc/net/tcp, not on the wire.")


def run(ctx):
    _, port = ctx.target(SERVER)
    capture = ctx.capture("server", port)
    clients = []
    for i in range(CONNECTIONS):
        conn = RobustConnection.connect(SERVER_HOST, port, ctx.config)
        ctx.on_cleanup(conn.close)
        conn.request(body(i + 1, SIZE))
        clients.append(conn)
    ours = {c.socket.getsockname()[1] for c in clients}
    ctx.mark("lab", "the lab's connections are served", ports=sorted(ours))
    stopped_wall = time.time()
    hold = ctx.apply("refuse")
    for conn in clients:   # each answers the server's FIN with its own, so the server's end is the one left waiting
        _read_to_eof(conn.socket, deadline=time.monotonic() + 2.0)
        conn.close()
    deadline = time.monotonic() + TIME_WAIT_BOUND
    while True:
        waiting = _time_wait(ctx.server_agent.socket_rows(port), port, ours)
        if waiting == ours or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    ctx.fault_at = ctx.mark("lab", "the server's old connections in TIME_WAIT", sockets=len(waiting))
    ctx.prove(f"the server's end of each of the lab's {CONNECTIONS} connections is in TIME_WAIT in its namespace "
              "(/proc/net/tcp)", waiting == ours,
              f"TIME_WAIT on :{port} for client ports {sorted(waiting)}; the lab's: {sorted(ours)}")
    for impl in ctx.impls:
        reply = ctx.server_agent.bind(port, impl)
        outcome = ctx.outcomes[impl]
        outcome.ended_at = ctx.now()
        table = reply.get("table", [])
        outcome.measurements.update(took_s=reply.get("took_s"),
                                    table_at_bind=sorted({row["state"] for row in table}))
        if reply["bound"]:
            ctx.mark(f"binder[{impl}]", f"bound 0.0.0.0:{port}")
        else:
            outcome.status, outcome.error, outcome.message = "error", reply["error"], reply["message"]
            outcome.errno_name = reply["errno"]
            outcome.facts["errno"] = reply["errno"]
            ctx.mark(f"binder[{impl}]", f"ERROR {reply['error']}", errno=reply["errno"])
        listening = [row for row in table if row["state"] == "LISTEN"]
        left = {int(row["remote"].rsplit(":", 1)[1]) for row in table if row["state"] == "TIME_WAIT"} & ours
        ctx.prove(f"when {impl} bound :{port}, nothing listened on it and the old connections were in TIME_WAIT",
                  not listening and left == ours,
                  f"{len(listening)} LISTEN, TIME_WAIT for {sorted(left)} of {sorted(ours)}; every state on the port: "
                  f"{sorted({row['state'] for row in table}) or 'none'}")
    # The lab's own server binds with SO_REUSEADDR: it must come back on the port while TIME_WAIT lasts.
    hold.clear()
    from lab.inlab.runner import wait_listening

    wait_listening(SERVER_HOST, port, timeout=15.0)
    # Every server was stopped, not only this one: the next scenario may use any of them, and one that
    # is not back yet turns its first connection through Toxiproxy into a reset (seen once in the suite).
    for other in sorted(set(SERVER_PORTS.values()) - {port}):
        wait_listening(SERVER_HOST, other, timeout=15.0)
    still = _time_wait(ctx.server_agent.socket_rows(port), port, ours)
    ctx.prove(f"the lab's {SERVER} server (SO_REUSEADDR) listens on :{port} again while TIME_WAIT lasts",
              bool(still), f"TIME_WAIT for {sorted(still)} after the restart")
    capture.stop()
    window = Window(stopped_wall, None)
    conns = connections(capture.pcap, server_port=port, client_ports=ours) if capture.pcap else []
    firsts, server_fins = [], []
    for conn in conns:
        server = earliest(conn.first(SERVER, FIN, window), conn.first(SERVER, RST, window))
        client = earliest(conn.first(CLIENT, FIN, window), conn.first(CLIENT, RST, window))
        firsts.append(server is not None and not server.has(RST) and client is not None
                      and server.time_ns < client.time_ns)
        server_fins.append(conn.first(SERVER, FIN, window))
    ctx.prove("on the wire the server closed each connection first (its FIN before the client's)",
              len(conns) == CONNECTIONS and all(firsts),
              f"{sum(firsts)} of {len(conns)} connections (of {CONNECTIONS}) closed by the server's FIN first, "
              f"the first {seconds_after(earliest(*server_fins), stopped_wall)} after the stop was asked")


def _time_wait(rows, port, ours):
    """The lab's client ports whose connection to ``port`` has its server end in TIME_WAIT."""
    found = set()
    for row in rows:
        local, remote = row["local"].rsplit(":", 1), row["remote"].rsplit(":", 1)
        if row["state"] == "TIME_WAIT" and int(local[1]) == port and int(remote[1]) in ours:
            found.add(int(remote[1]))
    return found


def _read_to_eof(sock, *, deadline):
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                return True
        except OSError:
            return False
    return False
