"""An HTTP-like exchange: the client sends its request, then shuts down its sending side."""

from lab.addresses import DEFAULT_PORT
from lab.sockets import framing
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "half-close"
TITLE = "Half-close"
HOWTO = "Disconnecting"
WIRE = """
The client sends three messages and calls shutdown(SHUT_WR): its kernel sends a FIN, which
tells the server "that is all I will send" while the client keeps reading. The server reads
to EOF, knows the request is complete, finishes its replies and closes. The client reads
every reply, then the server's FIN. Toxiproxy does not pass a half-close through (it closes
both ways), so this is shown on the direct path.
"""
INJECTION = "None: the client itself half-closes after its request (shutdown(SHUT_WR))."
PATH = "direct"
COUNT = 3
EXPECT = {"robust": Expect("completed", within=fixed(2.0), note="every reply read after our FIN, then EOF")}
REMEMBER = "shutdown(SHUT_WR) says 'done sending' and still lets you read the whole answer."
LOOK_FOR = "The client's FIN comes right after its three requests; the server's replies follow it, then the server's FIN."


def worker(ctx, subject, outcome):
    subject.connect()
    bodies = [body(i + 1, 500) for i in range(COUNT)]
    for b in bodies:
        subject.send(b)
    ctx.ready()
    subject.conn.shutdown_write()
    ctx.mark("client[robust]", "shutdown(SHUT_WR) sent")
    frames = subject.conn.read_until_eof(timeout=5.0)
    ctx.mark("client[robust]", "EOF after the replies", frames=len(frames))
    echoes = [f.body for f in frames if f.type is framing.FrameType.ECHO]
    outcome.exchanges_ok = sum(1 for got, sent in zip(echoes, bodies) if got == sent)
    outcome.corrupt = len(echoes) - outcome.exchanges_ok
    outcome.measurements["replies"] = len(echoes)


def run(ctx):
    capture = ctx.capture("server")
    closed_before = ctx.server_stats("threaded").get("closed", {})
    ctx.side_by_side(worker, fault=lambda: ctx.mark("client[robust]", "request sent; half-closing"))
    summary = capture.stop()
    ctx.check("robust", f"all {COUNT} replies read after the half-close",
              ctx.outcomes["robust"].exchanges_ok == COUNT, f"{ctx.outcomes['robust'].exchanges_ok} intact replies")
    conns = summary.connections_to(DEFAULT_PORT)
    c = conns[0] if conns else None
    ctx.prove("the client's FIN came first and the server's FIN after it",
              c is not None and c.client_to_server.fin.first is not None and c.server_to_client.fin.first is not None
              and c.client_to_server.fin.first <= c.server_to_client.fin.first,
              f"client FIN at {c.client_to_server.fin.first if c else None}, "
              f"server FIN at {c.server_to_client.fin.first if c else None}")
    closed_after = ctx.server_stats("threaded").get("closed", {})
    ctx.prove("the server saw EOF from the client", closed_after.get("eof", 0) > closed_before.get("eof", 0),
              f"server closed-by-eof count {closed_before.get('eof', 0)} → {closed_after.get('eof', 0)}")
