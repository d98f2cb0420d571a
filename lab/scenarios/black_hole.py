"""A black hole in the path: the proxy stops passing data but keeps the connection open."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import FIN, RST, Window
from lab.evidence.legs import CLIENT, SERVER, connections, pair, proxy_legs, retransmitted
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import converse

NAME = "black-hole"
TITLE = "Black hole in the path"
HOWTO = "When Sockets Die"
WIRE = """
Toxiproxy stops forwarding the server's bytes and holds the connection open. The client's
requests still reach the server and the server still answers, but the answers go no
further than the proxy. The proxy's kernel ACKs everything the client sends, so from the
client's TCP all is well: no retransmissions, keepalive probes answered, TCP_USER_TIMEOUT
never reached. The reply simply never comes. A middlebox or overloaded proxy can do exactly this.
"""
INJECTION = "A Toxiproxy timeout toxic (downstream, timeout 0: hold forever) on the threaded proxy."
PATH = "proxied"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"), detail={"detected_by": "heartbeat"},
                     note="dead_after 3 s + heartbeat 1 s; keepalive sees nothing wrong"),
    "naive": Expect("blocked"),
}
REMEMBER = "Keepalive checks the kernel next door, not the application: heartbeats check the peer."
LOOK_FOR = ("In `client.pcap` the client's request and PINGs are ACKed by the proxy's kernel at once; no "
            "retransmissions, no reply. In `server.pcap` the server answers every one of them, to the proxy.")


def run(ctx):
    client_capture = ctx.capture("client")
    server_capture = ctx.capture("server")
    ctx.side_by_side(converse(before=2, after=1), fault=lambda: ctx.apply("timeout", timeout=0))
    client_capture.stop()
    server_capture.stop()
    ctx.prove_each(prove_hole, client_capture.pcap, server_capture.pcap)


def prove_hole(ctx, client_pcap, server_pcap):
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    held = []
    for conn, leg in pair(subjects, legs):
        # The hole lasts from the fault until the client gives up (its own FIN or RST) or the lab closes it.
        own_close = conn.first(CLIENT, FIN) or conn.first(CLIENT, RST)
        end = min(ctx.teardown_wall or float("inf"), own_close.time_ns / 1e9 if own_close else float("inf"))
        held.append((conn, leg, Window(ctx.fault_wall, None if end == float("inf") else end)))
    prove_client_side(ctx, held)
    prove_server_side(ctx, held)


def prove_client_side(ctx, held):
    """What the client saw: every byte it sent ACKed, none retransmitted, and nothing back: no data, no FIN, no RST."""
    oks, details = [], []
    for conn, _, window in held:
        sent = conn.sent(CLIENT, window, data=True)
        acked = [s for s in sent if conn.acked(s)]
        again = retransmitted(conn, CLIENT, window)
        back = conn.sent(SERVER, window, data=True)
        closed = conn.sent(SERVER, window, flags=FIN) + conn.sent(SERVER, window, flags=RST)
        oks.append(bool(sent) and len(acked) == len(sent) and not again and not back and not closed)
        details.append(f"{conn.client}: {len(sent)} data segments ({sum(s.payload_len for s in sent)} B), "
                       f"{len(acked)} ACKed, {len(again)} retransmitted; from the proxy "
                       f"{sum(s.payload_len for s in back)} B, {len(closed)} FIN/RST "
                       f"in {window.describe(ctx.fault_wall)}")
    ctx.prove("after the fault the proxy ACKed every byte the client sent and sent nothing back, not even a close",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              "; ".join(details) or "no subject connection in client.pcap")


def prove_server_side(ctx, held):
    """Where the replies went: the server answered on Toxiproxy's own connection, and the proxy kept it all."""
    oks, details = [], []
    for conn, leg, window in held:
        if leg is None:
            oks.append(False)
            details.append(f"{conn.client}: no connection from the proxy to the server in server.pcap")
            continue
        requests = leg.sent(CLIENT, window, data=True)     # Toxiproxy is this leg's client
        replies = leg.sent(SERVER, window, data=True)
        passed = conn.sent(SERVER, window, data=True)
        oks.append(bool(requests) and bool(replies) and not passed)
        details.append(f"{conn.client} via {leg.client}: {sum(s.payload_len for s in requests)} B reached the "
                       f"server, it answered {sum(s.payload_len for s in replies)} B, the client got "
                       f"{sum(s.payload_len for s in passed)} B")
    ctx.prove("the server's answers after the fault reached the proxy and went no further",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              "; ".join(details) or "no subject connection in client.pcap")
