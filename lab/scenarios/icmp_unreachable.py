"""A router on the path answers "unreachable": a typed error within a round trip, where silence takes the whole deadline."""

import errno
import socket
import time

from lab.addresses import DEFAULT_PORT, SERVER_HOST
from lab.evidence.anchor import ACK, SYN, Window, segments
from lab.evidence.pcap import ICMP_CODES, ICMP_UNREACHABLE
from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import connect_then_exchange

NAME = "icmp-unreachable"
TITLE = "The path says unreachable (ICMP)"
HOWTO = "Creating a Socket"
WIRE = """
The router between the client and the server stops forwarding to the server's port and says
so: each client SYN is answered, by the router and not the server, with an ICMP
destination-unreachable. The client's kernel ends connect() at once with the errno of the
ICMP code: host unreachable and administratively prohibited (code 13) give EHOSTUNREACH,
port unreachable gives ECONNREFUSED, like the RST of a closed port. A router that drops
silently gives the client nothing: its SYNs are retried until the connect deadline.
One Linux detail: an ICMP error that arrives while the connecting thread still holds the socket
(a blocking connect() just after sending its SYN) is kept as a soft error, and the answer to
the SYN's retransmission, a second later, is the one that ends connect().
"""
INJECTION = (f"The router-agent rejects the clients' packets to port {DEFAULT_PORT} with ICMP host "
             "unreachable (iptables REJECT in the router's FORWARD chain). Afterwards the lab connects "
             "once per ICMP code, and once through a silent drop, with its own sockets.")
PATH = "direct"
WATCHDOG = 5.0
EXPECT = {
    "robust": Expect("error", ("NoRoute",), within=fixed(0.5), note="the router's ICMP comes back within a round trip"),
    # Measured: a blocking connect() often gets its error only from the second SYN, 1 s later. The
    # router's ICMP (0.2 ms away) can arrive while connect() still holds the socket, and Linux then
    # keeps it as a soft error (tcp_v4_err: sock_owned_by_user) and retransmits the SYN. A
    # connect() with a timeout is non-blocking underneath and is not holding the socket then.
    "naive": Expect("error", ("OSError",), within=1.5,
                    note="OSError(EHOSTUNREACH), which Python has no subclass for; at the first SYN or its "
                         "retransmission 1 s later"),
}
REMEMBER = "An ICMP error is an answer: fast and typed. Silence is not, and only your deadline ends it."
LOOK_FOR = ("On the router's lab side each SYN is followed, a fraction of a millisecond later, by an ICMP "
            "type 3 code 1 from the router quoting that SYN; nothing reaches the server.")

# What Linux gives connect() for each ICMP destination-unreachable code (icmp_err_convert[]).
ERRNO_OF = {"host-unreachable": "EHOSTUNREACH", "admin-prohibited": "EHOSTUNREACH",
            "port-unreachable": "ECONNREFUSED"}
SILENT_DEADLINE = 1.0     # the lab's own connect deadline through the silent drop


def run(ctx):
    router_side = ctx.capture("router-lab", filter=f"tcp and port {DEFAULT_PORT} or icmp")
    server_side = ctx.capture("server")
    reject = ctx.apply("unreachable", port=DEFAULT_PORT, icmp="host-unreachable")   # before anyone connects
    ctx.side_by_side(connect_then_exchange())
    rejected = reject.matched("in", target="REJECT")
    until = time.time()
    reject.clear()
    measured = measure_each_code(ctx)
    router_side.stop()
    server_side.stop()
    prove_answered(ctx, router_side.pcap, Window(ctx.fault_wall, until), rejected)
    prove_never_forwarded(ctx, server_side.pcap, Window(ctx.fault_wall, until))
    prove_errnos(ctx, measured)


def prove_answered(ctx, pcap, window, rejected):
    """Every subject's SYN reached the router and was answered by it with ICMP host unreachable quoting it."""
    syns = [s for s in segments(pcap, window, dst_port=DEFAULT_PORT, flags=SYN) if not s.has(ACK)]
    code = ICMP_CODES["host-unreachable"]
    answers = {}
    for syn in syns:
        icmp = next((m for m in pcap.icmp if m.type == ICMP_UNREACHABLE and m.code == code
                     and m.about_src == syn.src and m.about_dst.port == DEFAULT_PORT
                     and syn.time_ns <= m.time_ns <= syn.time_ns + 50_000_000), None)
        if icmp is not None:
            answers[syn.src.port] = (icmp.time_ns - syn.time_ns) / 1e6
    tried = {s.src.port for s in syns}
    impls = judged(ctx, EXPECT)
    noted = set().union(*(ctx.client_ports(impl) for impl in impls))
    synacks = segments(pcap, window, src_port=DEFAULT_PORT, peer_ports=tried, flags=SYN | ACK)
    ok = (len(tried) >= len(impls) and noted <= tried and set(answers) == tried and not synacks
          and rejected >= len(syns) > 0)
    ctx.prove("the router answered every subject's SYN with ICMP host unreachable (type 3, code 1)", ok,
              f"{len(syns)} SYNs from ports {sorted(tried)} on the router's lab side; ICMP back for "
              f"{sorted(answers)} within {max(answers.values(), default=0):.2f} ms; {len(synacks)} SYN-ACKs; "
              f"the REJECT rule matched {rejected}; the clients' own ports {sorted(noted)}; "
              f"window {window.describe(ctx.fault_wall)}")


def prove_never_forwarded(ctx, pcap, window):
    """The fault is the router's: while it stood, none of the subjects' SYNs reached the server."""
    impls = judged(ctx, EXPECT)
    noted = set().union(*(ctx.client_ports(impl) for impl in impls))
    arrived = [s for s in segments(pcap, window, dst_port=DEFAULT_PORT, flags=SYN) if s.src.port in noted]
    ctx.prove("no SYN of the subjects crossed the router to the server", bool(noted) and not arrived,
              f"{len(arrived)} SYNs from the clients' ports {sorted(noted)} on the server's interface "
              f"in {window.describe(ctx.fault_wall)}")


def measure_each_code(ctx):
    """The lab's own connect() through the router once per ICMP code, then once through a silent drop.

    The rules go in through the router-agent directly, not through the fault: a weakened fault
    must not weaken what the lab measures.
    """
    measured = {}
    agent = ctx.router_agent
    for name in (*ERRNO_OF, "silent"):
        action = "drop" if name == "silent" else f"reject-{name}"
        agent.block(port=DEFAULT_PORT, direction="in", syn_only=True, action=action)
        try:
            measured[name] = connect_once(SILENT_DEADLINE if name == "silent" else 3.0)
        finally:
            agent.unblock()
        ctx.mark("lab", f"connect() through the router's {name}", **measured[name])
    ctx.facts["errno_by_icmp_code"] = measured
    return measured


def connect_once(timeout):
    s = socket.socket()
    s.settimeout(timeout)
    started = time.monotonic()
    try:
        s.connect((SERVER_HOST, DEFAULT_PORT))
        result = "connected"
    except TimeoutError:
        result = "timeout"
    except OSError as exc:
        result = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    finally:
        s.close()
    return {"result": result, "took_s": round(time.monotonic() - started, 4)}


def prove_errnos(ctx, measured):
    got = {name: measured[name]["result"] for name in ERRNO_OF}
    fast = all(measured[name]["took_s"] < 0.5 for name in ERRNO_OF)
    silent = measured["silent"]
    ctx.prove("each ICMP code gave connect() its errno within a round trip; the silent drop only a timeout",
              got == ERRNO_OF and fast and silent["result"] == "timeout" and silent["took_s"] >= SILENT_DEADLINE,
              "; ".join(f"{name}: {m['result']} in {m['took_s'] * 1000:.1f} ms" for name, m in measured.items())
              + f" (expected {ERRNO_OF}, then a timeout after the {SILENT_DEADLINE:g} s deadline)")
