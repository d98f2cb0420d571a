"""One client dies mid-message against the selectors server; the others must not notice."""

import socket
import struct
import threading

from lab.sockets import framing
from lab.sockets.robust import RobustConnection
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "multiplexed-peer-death"
TITLE = "One peer dies on a multiplexed server"
HOWTO = "Non-blocking Sockets"
WIRE = """
Ten clients talk to the single-threaded selectors server at once. Two more start a message
and die in the middle of it: one resets its connection (RST), one closes after half a
frame (FIN inside a message). The HOWTO warns that one socket dying a nasty death can upset
a select loop; a well-built server finds the broken connection, drops it, and keeps serving
everyone else.
"""
INJECTION = "Two extra clients send half a frame, then one aborts (SO_LINGER 0 → RST) and one closes."
PATH = "direct"
CLIENTS = 10
ROUNDS = 10
EXPECT = {"robust": Expect("completed", within=fixed(10.0), note="all other clients finish every exchange")}
REMEMBER = "On a multiplexed server, one dying client must cost one connection, not the loop."
LOOK_FOR = "One connection ends in an RST after half a frame, one in a FIN after half a frame; the other ten keep exchanging."


def victim(host, port, *, reset):
    sock = socket.create_connection((host, port), timeout=3)
    header = framing.HEADER.pack(1000, framing.FrameType.DATA)
    sock.sendall(header + framing.SEQ.pack(1) + b"x" * 300)  # 313 of 1005 bytes of a frame
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def worker(ctx, subject, outcome):
    host, port = subject.host, subject.port
    conns = [RobustConnection.connect(host, port, ctx.config) for _ in range(CLIENTS)]
    results = {"ok": 0, "bad": 0, "errors": []}
    lock = threading.Lock()
    try:
        for c in conns:
            c.request(body(0, 200))
        ctx.ready()
        ctx.mark("lab", "two clients die mid-message (one RST, one FIN)")
        victim(host, port, reset=True)
        victim(host, port, reset=False)

        def talk(i, conn):
            for r in range(ROUNDS):
                try:
                    b = body(i * 100 + r, 200)
                    good = conn.request(b) == b
                except Exception as exc:  # noqa: BLE001 - any failure of a bystander is the finding
                    with lock:
                        results["errors"].append(f"{type(exc).__name__}: {exc}")
                    return
                with lock:
                    results["ok" if good else "bad"] += 1

        threads = [threading.Thread(target=talk, args=(i, c), daemon=True) for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
    finally:
        for c in conns:
            c.close()
    outcome.exchanges_ok = results["ok"]
    outcome.corrupt = results["bad"]
    outcome.measurements["bystander_errors"] = results["errors"]
    ctx.mark("client[robust]", "bystanders done", ok=results["ok"], errors=len(results["errors"]))


def run(ctx):
    before = ctx.server_stats("selectors")
    ctx.side_by_side(worker, server="selectors", fault=lambda: None)
    after = ctx.server_stats("selectors")
    ctx.check("robust", f"all {CLIENTS} bystanders finished all {ROUNDS} exchanges",
              ctx.outcomes["robust"].exchanges_ok == CLIENTS * ROUNDS,
              f"{ctx.outcomes['robust'].exchanges_ok} of {CLIENTS * ROUNDS}; errors: "
              f"{ctx.outcomes['robust'].measurements.get('bystander_errors')}")
    grew = sum(after.get("errors", {}).values()) - sum(before.get("errors", {}).values())
    ctx.prove("the selectors server saw the two broken connections", grew >= 2,
              f"server errors grew by {grew}: {after.get('errors')}")
