"""One forked child of a process-per-connection server dies mid-message; the others live."""

import socket
import time

from lab.addresses import SANDBOX_UID, SERVER_HOST, SERVER_PORTS
from lab.evidence.anchor import Window
from lab.evidence.legs import CLIENT, SERVER, connections
from lab.evidence.pcap import ACK, FIN, RST, SYN
from lab.inlab import submission, tcptable
from lab.inlab.processes import serving
from lab.inlab.proofs import earliest, per_connection, seconds_after, subjects
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body, converse
from lab.sockets import framing
from lab.sockets.errors import LabError
from lab.sockets.robust import RobustConnection

NAME = "child-crash"
TITLE = "A forked child crashes"
HOWTO = "When Sockets Die"
WIRE = """
The forking server gives every client a process of its own. The lab stops the child that
serves the client, lets the client's next message arrive in that child's socket unread, and
kills it with SIGKILL. The dead child's kernel closes the connection for it, and since bytes
were still waiting unread it does not send a FIN: it sends an RST. The client waiting for its
reply hears "connection reset". The listener and the other children are other processes:
another client's connection, served by a sibling, carries on untouched, and a new client
is accepted and served at once.
"""
INJECTION = ("The server-agent finds the forking server's child that holds each client's connection (its "
             "/proc/PID/fd against /proc/net/tcp), SIGSTOPs it, waits until the client's next message sits unread "
             "in its socket, then SIGKILLs it; a connection of the lab's own, served by another child, runs "
             "throughout.")
PATH = "direct"
SERVER = "forking"
SIZE = 100
FRAME = framing.HEADER_SIZE + framing.SEQ.size + SIZE   # one DATA frame on the wire
EXPECT = {
    "robust": Expect("error", ("PeerReset",), within=fixed(1.0),
                     note="the dead child's kernel resets the connection at once"),
    "naive": Expect("error", ("ConnectionResetError",), within=1.0, note="recv() sees the RST"),
}
REMEMBER = ("A process per connection isolates failures: a crashed child takes its own client with it (an RST when "
            "it dies with data unread), and nobody else.")
LOOK_FOR = ("On each judged connection the client's last message is ACKed by the server's kernel but never "
            "answered; a few milliseconds after the SIGKILL the server's RST ends it. On the lab's own connection "
            "and on the new one: no FIN, no RST, replies as usual.")


def run(ctx):
    _, port = ctx.target(SERVER)
    capture = ctx.capture("server", port)
    bystander = RobustConnection.connect(SERVER_HOST, port, ctx.config)   # the lab's own, on a sibling child
    ctx.on_cleanup(bystander.close)
    own = {"port": bystander.socket.getsockname()[1], "ok": 0}
    for seq in (1, 2):
        own["ok"] += bystander.request(body(seq, SIZE)) == body(seq, SIZE)
    ctx.mark("lab", "the lab's own connection is served", port=own["port"])
    kills = {}

    def fault():
        before = ctx.server_agent.processes(sockets=True)
        ctx.facts["listener_before"] = serving(before, port)
        for impl in ctx.impls:
            for peer in _ports(ctx, impl, port):
                # The kill waits for one whole frame unread (graded code that sends less is killed after
                # the fault's wait all the same).
                kills[peer] = (impl, ctx.apply("kill-child", server=SERVER, peer_port=peer, unread=FRAME))

    ctx.side_by_side(converse(before=2, after=1, size=SIZE), server=SERVER, fault=fault)
    for _impl, handle in kills.values():
        handle.wait_killed()
    killed = {peer: h for peer, (_impl, h) in kills.items() if h.killed}
    if killed:
        # The judged moment is the kill (SIGSTOP and the client's send came first).
        ctx.fault_at = min(h.killed_at for h in killed.values())
        first_kill = min(h.kill_wall for h in killed.values())
    else:
        first_kill = ctx.fault_wall
    try:
        for seq in (3, 4):
            own["ok"] += bystander.request(body(seq, SIZE)) == body(seq, SIZE)
    except LabError as exc:     # a fault that hit the wrong process: the proof below says so
        ctx.mark("lab", f"the lab's own connection failed: {exc.kind}", message=str(exc)[:160])
    own_closed = time.time()
    bystander.close()
    late_port, late_ok = 0, False
    try:
        late = RobustConnection.connect(SERVER_HOST, port, ctx.config)     # the listener still accepts
        late_port = late.socket.getsockname()[1]
        late_ok = late.request(body(1, SIZE)) == body(1, SIZE)
        late.close()
    except LabError as exc:
        ctx.mark("lab", f"a new connection after the kills failed: {exc.kind}", message=str(exc)[:160])
    capture.stop()
    try:
        stats = ctx.server_stats(SERVER)
    except OSError as exc:    # its control port is the listener's: a fault that killed the listener
        ctx.mark("lab", f"the {SERVER} server's control port did not answer: {exc}")
        stats = {}

    # The wire: an RST from the server on each judged connection after its child's kill, before the client's own.
    def reset_after_kill(conn):
        handle = killed.get(conn.client.port)
        if handle is None:
            return False, "its child was never killed"
        window = Window(handle.kill_wall, None)
        rst = conn.first(SERVER, RST, window)
        fin = conn.first(SERVER, FIN, Window(handle.kill_wall - 5, None))
        mine = earliest(conn.first(CLIENT, FIN, window), conn.first(CLIENT, RST, window))
        ok = rst is not None and fin is None and (mine is None or rst.time_ns < mine.time_ns)
        return ok, (f"server RST {seconds_after(rst, handle.kill_wall)} after the kill"
                    + (f", but a server FIN {seconds_after(fin, handle.kill_wall)}" if fin else ", no FIN")
                    + (f"; client's own close {seconds_after(mine, handle.kill_wall)}" if mine else ""))

    per_connection(ctx, "each killed child's connection ended with the server's RST after the kill, no FIN",
                   subjects(ctx, capture.pcap, port, EXPECT), reset_after_kill)
    pcap = capture.pcap
    ours = connections(pcap, server_port=port, client_ports={own["port"]}) if pcap else []
    quiet = Window(first_kill, own_closed)
    closes = [s for c in ours for s in c.sent(SERVER, quiet) if s.has(FIN) or s.has(RST)]
    replies = [s for c in ours for s in c.sent(SERVER, Window(first_kill, None), data=True)]
    ctx.prove("the lab's own connection (a sibling child) lived through the kills: no FIN or RST from the server, "
              "its replies intact", len(ours) == 1 and not closes and replies and own["ok"] == 4,
              f"{len(ours)} connection(s) from :{own['port']}; {len(closes)} server FIN/RST in "
              f"{quiet.describe(first_kill)}; {len(replies)} reply segments after the first kill; "
              f"{own['ok']} of 4 echoes intact")
    new = connections(pcap, server_port=port, client_ports={late_port}) if pcap else []
    accepted = [s for c in new for s in c.sent(SERVER, Window(first_kill, None), flags=SYN | ACK)]
    ctx.prove("the listener lives: a new connection after the kills was accepted and served",
              late_ok and bool(accepted), f"SYN-ACK to :{late_port} {seconds_after(earliest(*accepted), first_kill)} "
                                          f"after the first kill; echo {'intact' if late_ok else 'NOT intact'}")
    children = {c["pid"] for c in stats.get("children", [])}
    died = [e for e in stats.get("error_log", []) if e.get("error") == "ChildDied"]
    ctx.prove("the server counts each killed child as killed, and nothing else", (
        stats.get("closed", {}).get("killed") == len(killed) == len(died)
        and {e.get("pid") for e in died} == {h.child["pid"] for h in killed.values() if h.child}
        and not children & {e.get("pid") for e in died}),
        f"closed {stats.get('closed')}; ChildDied for pids {sorted(e.get('pid') for e in died)}; "
        f"killed {sorted(h.child['pid'] for h in killed.values() if h.child)}")
    for impl in ctx.judged:
        handle = next((h for p, h in killed.items() if kills[p][0] == impl), None)
        outcome = ctx.outcomes[impl]
        if handle is not None and outcome.ended_at is not None:
            took = outcome.ended_at - handle.killed_at
            outcome.measurements["detected_after_kill_s"] = round(took, 4)
            ctx.check(impl, "it reported the reset within 1 s of its own child's kill", 0 <= took <= 1.0,
                      f"{took * 1000:.1f} ms after its child's SIGKILL")


def _ports(ctx, impl, port):
    """The local ports of ``impl``'s connections to the forking server: noted by the runner, or, for a
    program in the sandbox, read from the client namespace's socket table by the sandbox's uid."""
    noted = ctx.client_ports(impl)
    if noted or not submission.is_submission(impl):
        return sorted(noted)
    address = socket.gethostbyname(SERVER_HOST)
    return sorted(tcptable.ports_of(tcptable.read(), uid=SANDBOX_UID, remote=(address, SERVER_PORTS[SERVER])))
