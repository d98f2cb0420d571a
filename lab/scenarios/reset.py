"""The connection is reset: an RST arrives instead of data (Toxiproxy reset_peer)."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import FIN, RST, Window
from lab.evidence.legs import CLIENT, SERVER, connections, pair, proxy_legs
from lab.inlab.scenario import Expect, fixed
from lab.inlab.workloads import connect_then_exchange

NAME = "reset"
TITLE = "Connection reset"
HOWTO = "When Sockets Die"
WIRE = """
The client's first message passes through the proxy to the server. When the server's reply
reaches the proxy, the proxy throws it away and closes the client's connection with
SO_LINGER 0, so the client's kernel receives a real RST instead of the reply: the peer has
thrown the connection away, with whatever was in flight. The next recv fails with
ECONNRESET. This RST is made by Toxiproxy itself on the client's side; an RST from the
server would reach the client as a FIN, which is why the reset must be injected here.
"""
INJECTION = ("A Toxiproxy reset_peer toxic (downstream, timeout 0) on the threaded proxy, in place before "
             "the client connects (it resets only connections opened after it exists).")
PATH = "proxied"
TIMEOUT_MS = 0
SLACK_S = 0.5      # from the reply reaching the proxy to the RST on the client's wire, beyond the timeout
EXPECT = {
    "robust": Expect("error", ("PeerReset",), within=fixed(1.0)),
    "naive": Expect("error", ("ConnectionResetError",), within=1.0, note="unhandled, as the HOWTO's code would"),
}
REMEMBER = "An RST means the peer discarded the connection: whatever was in flight is gone."
LOOK_FOR = ("In `server.pcap` the request reaches the server and its reply reaches the proxy; in `client.pcap` "
            "the proxy's RST follows at once, with no reply data at all.")


def run(ctx):
    client_capture = ctx.capture("client")
    server_capture = ctx.capture("server")
    ctx.apply("reset-peer", timeout=TIMEOUT_MS)
    ctx.side_by_side(connect_then_exchange())
    client_capture.stop()
    server_capture.stop()
    ctx.prove_each(prove_reset, client_capture.pcap, server_capture.pcap)


def prove_reset(ctx, client_pcap, server_pcap):
    """The RST each subject got is the toxic's: after its request, before its own close, right
    after the server's reply reached the proxy (the toxic sits on the replies), with no reply byte before it."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    subjects = connections(client_pcap, server_port=DEFAULT_PORT, client_ports=ctx.client_ports())
    legs = proxy_legs(server_pcap, subjects, server_port=DEFAULT_PORT)
    oks, details = [], []
    for conn, leg in pair(subjects, legs):
        rst = conn.first(SERVER, RST, window)
        request = next(iter(conn.sent(CLIENT, window, data=True)), None)
        own_close = conn.first(CLIENT, FIN) or conn.first(CLIENT, RST)
        replied = next(iter(leg.sent(SERVER, window, data=True)), None) if leg is not None else None
        if rst is None or request is None or replied is None:
            oks.append(False)
            details.append(f"{conn.client}: " + ", ".join(
                what for what, missing in (("no RST from the proxy", rst is None),
                                           ("no request from the client", request is None),
                                           ("no reply from the server to the proxy", replied is None)) if missing))
            continue
        t_rst, t_request, t_reply = rst.time_ns / 1e9, request.time_ns / 1e9, replied.time_ns / 1e9
        leaked = conn.sent(SERVER, Window(ctx.fault_wall, t_rst), data=True)
        after_reply = t_rst - t_reply
        before_close = own_close is None or rst.time_ns < own_close.time_ns
        oks.append(t_request < t_rst and before_close and not leaked
                   and 0 <= after_reply <= TIMEOUT_MS / 1000 + SLACK_S)
        details.append(f"{conn.client}: RST {(t_rst - t_request) * 1000:.1f} ms after its request, "
                       f"{after_reply * 1000:.1f} ms after the server's reply reached the proxy ({leg.client}), "
                       + ("before" if before_close else "after") + " the client's own close, "
                       f"{sum(s.payload_len for s in leaked)} reply bytes before it")
    ctx.prove("the proxy reset every connection when the server's reply reached it, before the client closed",
              bool(oks) and all(oks) and len(oks) == len(ctx.judged),
              f"{'; '.join(details) or 'no subject connection in client.pcap'} (expected an RST within "
              f"{TIMEOUT_MS} ms + {SLACK_S * 1000:.0f} ms of the reply, no reply byte, before any FIN of the client)")
