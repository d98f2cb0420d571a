"""The client's host has no ephemeral port left for the server: connect() fails with EADDRNOTAVAIL."""

import errno

from lab.evidence.anchor import ACK, SYN, Window, segments
from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import body

NAME = "port-exhaustion"
TITLE = "Ephemeral port exhaustion (EADDRNOTAVAIL)"
HOWTO = "Creating a Socket"
WIRE = """
A client's connect() needs a local port, and unless the code binds one itself the kernel picks
it from the ephemeral range (net.ipv4.ip_local_port_range, 28232 ports here). A local port
can carry one connection to each destination (each distinct address and port of the peer),
so the range runs out for one destination only: when every port is taken by connections to
that server, by listeners, or by connections still in TIME_WAIT after a close, connect()
fails at once with EADDRNOTAVAIL ("Cannot assign requested address"). Nothing goes on the
wire, not even a SYN, and the same program may still reach every other destination. It is
what a client that opens a new connection per request and closes it first meets under load:
each close leaves its port in TIME_WAIT for a minute. Retrying at once only spins; the cure
is fewer, longer-lived connections (or a wider range).
"""
INJECTION = ("The client-agent (root, in the client's network namespace) reads the ephemeral range, holds a "
             "listening socket on 127.0.0.1 on every port of it but 4 (in three helper processes: the engine caps "
             "a container's open files at 20000), then connects to server:7000 from those 4 until connect() fails "
             "with EADDRNOTAVAIL; the clients then connect to server:7000. /proc/sys is read-only here, so the "
             "range itself is not narrowed: every port of it is taken instead. Released (every socket closed, "
             "counted) when the fault is cleared and on the agent's reset.")
PATH = "direct"
WATCHDOG = 8.0
SIZE = 100
EXPECT = {
    "robust": Expect("error", ("AddressUnavailable",), within=fixed(0.5),
                     detail={"errno_name": "EADDRNOTAVAIL", "phase": "connect"},
                     note="the kernel refuses the connect() itself, before any packet: no timeout is involved "
                          "(measured: a few milliseconds after the fault is in place)"),
    "naive": Expect("error", ("OSError",), within=0.5,
                    note="a plain OSError with errno EADDRNOTAVAIL: no subclass of OSError names errno 99"),
}
REMEMBER = ("EADDRNOTAVAIL on connect() means this host is out of ports for that peer: report it at once, and "
            "reuse connections rather than opening one per request.")
LOOK_FOR = ("After the fault is in place, no SYN from the client reaches the server's port: the kernel refused "
            "each connect() before sending anything. Before it, the agent's four connections from the top of "
            "the range complete their handshakes.")


def worker(ctx, subject, outcome):
    actor = f"client[{subject.impl}]"
    ctx.ready()
    ctx.mark(actor, "connecting", to=f"{subject.host}:{subject.port}")
    subject.connect()
    ctx.mark(actor, "connected")
    ctx.exchange(subject, outcome, body(1, SIZE))


def run(ctx):
    _, port = ctx.target()
    capture = ctx.capture("server", port)
    handles = []
    ctx.side_by_side(worker, fault=lambda: handles.append(ctx.apply("exhaust-ports", server="threaded")))
    capture.stop()
    facts = handles[0].facts() if handles else {}
    ctx.facts["exhaustion"] = facts
    for impl in judged(ctx, EXPECT):
        outcome = ctx.outcomes[impl]
        if outcome.ended_at is not None and ctx.fault_at is not None:
            outcome.measurements["detected_s"] = round(outcome.ended_at - ctx.fault_at, 4)
        ctx.check(impl, "the error carries errno EADDRNOTAVAIL", outcome.errno_name == "EADDRNOTAVAIL",
                  f"errno {outcome.errno_name} ({outcome.error})")
    ctx.prove_each(prove_no_syn, capture.pcap, port)
    ctx.prove_each(prove_errno)


def prove_no_syn(ctx, pcap, port):
    # Each judged implementation tried to connect after the fault was in place; none of those
    # attempts reached the wire: the server's side saw no SYN to its port in that window.
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    syns = [s for s in segments(pcap, window, dst_port=port, flags=SYN) if not s.has(ACK)] if pcap else []
    ctx.prove(f"no SYN reached the server's port {port} while the ports were exhausted", pcap is not None and not syns,
              f"{len(syns)} SYNs from ports {sorted({s.src.port for s in syns})} in the window "
              f"{window.describe(ctx.fault_wall)}" if pcap is not None else "no capture")


def prove_errno(ctx):
    # The kernel's word, as each implementation received it: the errno of its failed connect().
    seen = {impl: ctx.outcomes[impl].errno_name for impl in judged(ctx, EXPECT)}
    ctx.prove("every judged client's connect() failed with EADDRNOTAVAIL",
              bool(seen) and all(name == errno.errorcode[errno.EADDRNOTAVAIL] for name in seen.values()),
              ", ".join(f"{impl}: {name}" for impl, name in seen.items()) or "no client judged")
