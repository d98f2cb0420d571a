"""Connecting into a black hole: the SYNs are dropped and nothing answers."""

import time
from collections import Counter

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import RST, SYN, Window, segments
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import connect_then_exchange

NAME = "connect-black-hole"
TITLE = "Connect into a black hole"
HOWTO = "Creating a Socket"
WIRE = """
The server's namespace drops every SYN to the port. The client's kernel sends the SYN
again and again (six retries by default, tcp_syn_retries; recent kernels space the first
few one second apart, then double the gap) and gives up only after a minute or two. A
connect() without a deadline waits all of that; a connect deadline ends it when you decide.
"""
INJECTION = f"The server-agent drops new connections' SYNs to port {DEFAULT_PORT} (iptables DROP on --syn)."
PATH = "direct"
WATCHDOG = 7.0
EXPECT = {
    "robust": Expect("error", ("ConnectTimeout",), within=bound("connect", 0.5), note="connect timeout 3 s + 0.5 s"),
    "naive": Expect("blocked", note="the kernel keeps retrying its SYN for a minute or two"),
}
REMEMBER = "connect() has no deadline of its own: give it one."
LOOK_FOR = "The same SYN again and again, with no answer; the rule's counter counts each one that reached the server."


def run(ctx):
    server_side = ctx.capture("server")
    client_side = ctx.capture("client")
    drop = ctx.apply("syn-drop", port=DEFAULT_PORT)     # in place before anyone connects
    ctx.side_by_side(connect_then_exchange())
    dropped = drop.matched("in", target="DROP")
    until = time.time()
    server_side.stop()
    client_side.stop()
    tries = prove_syns_retried(ctx, server_side.pcap)
    arrived = segments(server_side.pcap, Window(ctx.fault_wall, until), dst_port=DEFAULT_PORT, flags=SYN)
    ctx.prove("the DROP rule took every SYN that arrived",
              bool(arrived) and dropped == len(arrived),
              f"DROP on SYNs to :{DEFAULT_PORT} matched {dropped}; {len(arrived)} SYNs arrived on the server's "
              "interface")
    prove_no_answer(ctx, client_side.pcap, set(tries))


def prove_syns_retried(ctx, pcap):
    """Each subject's SYNs, after the fault, on the server's interface (tcpdump sees them before INPUT
    drops them); the subjects never got a connection, so their ports are known from these SYNs:
    after the fault nothing else in the lab dials the server's port."""
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    tries = Counter(s.src.port for s in segments(pcap, win, dst_port=DEFAULT_PORT, flags=SYN))
    ctx.prove("every subject's SYNs reached the server's interface after the fault, and were retried",
              len(tries) == len(ctx.judged) and ctx.client_ports() <= set(tries)
              and all(n >= 2 for n in tries.values()),
              ", ".join(f":{port} sent {n} SYNs" for port, n in sorted(tries.items()))
              + f" in {win.describe(ctx.fault_wall)} (server's interface)")
    return tries


def prove_no_answer(ctx, pcap, ports):
    """Nothing came back to those ports, where the client would have seen it: no SYN-ACK, no RST."""
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    sent = segments(pcap, win, dst_port=DEFAULT_PORT, peer_ports=ports, flags=SYN)
    answers = segments(pcap, win, src_port=DEFAULT_PORT, peer_ports=ports)
    ctx.prove("no answer reached the client: no SYN-ACK, no RST",
              bool(sent) and not answers,
              f"{len(sent)} SYNs left the client, {len(answers)} segments came back from :{DEFAULT_PORT} "
              f"({sum(s.has(SYN) for s in answers)} SYN-ACK, {sum(s.has(RST) for s in answers)} RST) "
              "on the client's interface")
