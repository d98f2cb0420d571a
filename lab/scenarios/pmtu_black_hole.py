"""A path MTU black hole: small messages pass, a large one never arrives, and nobody is told why."""

import socket
import struct
import time

from lab.addresses import DEFAULT_PORT, SERVER_HOST
from lab.evidence.anchor import Window, segments
from lab.evidence.streams import resent
from lab.inlab.proofs import judged
from lab.inlab.scenario import Expect, bound
from lab.inlab.workloads import body
from lab.sockets.framing import NEED_DATA, Decoder, Frame, FrameType, encode_data

NAME = "pmtu-black-hole"
TITLE = "Path MTU black hole"
HOWTO = "Using a Socket"
WIRE = """
The router's link to the server carries at most 1200-byte packets, and the ICMP "fragmentation
needed" it should send for bigger ones is dropped (a firewall that blocks all ICMP). The
handshake and short messages fit and pass. A large message goes out in full-sized 1500-byte
packets with Don't Fragment set: the router cannot forward them, the sender is never told, and
its TCP retransmits the same full-sized segment again and again. Heartbeats queue behind it in
the byte stream, so they stall too. The connection looks alive at connect time and dies at
the first big write (RFC 2923).
"""
INJECTION = ("The router-agent sets its backend link's MTU to 1200 and drops the ICMP fragmentation-needed "
             "messages the router sends (iptables DROP in OUTPUT); the clients then send a 6000-byte message.")
PATH = "direct"
WATCHDOG = 8.0
MTU, SMALL, LARGE = 1200, 100, 6000
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout", "read-deadline")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s"),
    "naive": Expect("blocked", note="its full-sized segment is retransmitted for minutes"),
}
REMEMBER = "If small messages work and big ones hang, suspect the path MTU: clamp the MSS or let ICMP through."
LOOK_FOR = ("On the router's lab side the client's 1448-byte segments arrive again and again; on the server's "
            "interface none of them. The router's fragmentation-needed counter grows; no ICMP reaches the client.")


def worker(ctx, subject, outcome):
    subject.connect()
    ctx.exchange(subject, outcome, body(1, SMALL))
    ctx.ready()
    ctx.exchange(subject, outcome, body(2, SMALL))      # small still passes with the fault in place
    ctx.mark(f"client[{subject.impl}]", f"sending {LARGE} bytes")
    ctx.exchange(subject, outcome, body(3, LARGE))


def run(ctx):
    router_side = ctx.capture("router-lab", filter=f"tcp and port {DEFAULT_PORT} or icmp")
    server_side = ctx.capture("server")
    ctx.side_by_side(worker, fault=lambda: ctx.apply("pmtu", mtu=MTU))
    # The size of the hole, measured by the lab's own connections while the fault is in place: packets
    # a little under the link's MTU cross, a little over do not.
    fits_probe = probe(MTU - 40 - 100)
    over_probe = probe(MTU - 40 + 100)
    dropped = ctx.router_agent.path_counters()["frag_needed_dropped"]
    router_side.stop()
    server_side.stop()
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    ports = set().union(*(ctx.client_ports(impl) for impl in judged(ctx, EXPECT)))
    fits = MTU - 40
    big_in = [s for s in segments(router_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports)
              if s.payload_len > fits]
    big_out = [s for s in segments(server_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports)
               if s.payload_len > fits]
    small_out = [s for s in segments(server_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ports)
                 if 0 < s.payload_len <= fits]
    per_port = {p: sum(1 for s in big_in if s.src.port == p) for p in sorted(ports)}
    again = {p: len([s for s in resent(router_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports={p})
                     if s.payload_len > fits]) for p in sorted(ports)}
    ctx.prove(f"the clients' segments larger than the small link ({fits} B of payload) reached the router, were "
              "retransmitted, and none reached the server",
              bool(ports) and all(per_port.values()) and all(again.values()) and not big_out,
              f"large segments at the router's lab side per client port {per_port}, retransmitted {again}; "
              f"{len(big_out)} of them on the server's interface; window {window.describe(ctx.fault_wall)}")
    ctx.prove("small segments still crossed after the fault", bool(small_out),
              f"{len(small_out)} data segments of at most {fits} B reached the server's interface after the fault")
    told = [m for m in router_side.pcap.icmp if m.type == 3 and m.code == 4 and m.about_src.port in ports]
    ctx.prove("the router's fragmentation-needed ICMP was dropped before it left: the clients were never told",
              dropped >= 1 and not told,
              f"the router's DROP of its own fragmentation-needed matched {dropped}; {len(told)} of them about the "
              "clients' connections on its lab side")
    ctx.prove(f"the hole is the link's {MTU}-byte MTU: packets a little under it crossed, a little over did not",
              fits_probe["echoed"] and not over_probe["echoed"],
              f"the lab's connection with MSS {fits_probe['mss']} (packets of about {fits_probe['mss'] + 40} B) "
              f"{'was' if fits_probe['echoed'] else 'was not'} echoed, with MSS {over_probe['mss']} "
              f"{'was' if over_probe['echoed'] else 'was not'} ({PROBE_WAIT:g} s each)")


PROBE_WAIT = 1.0


def probe(mss):
    """One lab connection whose segments carry at most ``mss`` bytes (TCP_MAXSEG, set before connecting,
    caps what it sends and what it asks for): is a 3000-byte message echoed within PROBE_WAIT?"""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.settimeout(PROBE_WAIT)
    payload = body(1, 3000)
    try:
        sock.connect((SERVER_HOST, DEFAULT_PORT))
        sock.sendall(encode_data(1, payload))
        dec, deadline = Decoder(), time.monotonic() + PROBE_WAIT
        while time.monotonic() < deadline:
            event = dec.next_event()
            if isinstance(event, Frame):
                return {"mss": mss, "echoed": event.type is FrameType.ECHO and event.body == payload}
            if event is not NEED_DATA:
                break
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                break
            dec.receive_data(chunk)
        return {"mss": mss, "echoed": False}
    except OSError:
        return {"mss": mss, "echoed": False}
    finally:
        # An abort: a close would leave the kernel retransmitting the stuck segment for minutes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
