"""The forgetful firewall, and no keepalive: the connection dies while idle, and robust finds out at its next request."""

from lab.addresses import DEFAULT_PORT
from lab.inlab.scenario import Expect, bound
from lab.scenarios import _idle
from lab.sockets.robust import RobustConfig

NAME = "firewall-idle-expiry-no-keepalive"
TITLE = "Forgetful firewall, keepalive off"
HOWTO = "When Sockets Die"
WIRE = f"""
The same stateful firewall, forgetting connections idle for {_idle.ESTABLISHED} s, but the
robust client has keepalive turned off: nothing crosses the router while it is quiet, and its
entry expires like any other. Its next request is dropped at the router, unacknowledged; its
heartbeat PINGs go the same way. Its own deadlines turn the silence into an error. The
connection cannot be saved; a new one (a SYN, which the firewall admits) can.
"""
INJECTION = (f"As in firewall-idle-expiry (a {_idle.ESTABLISHED} s established timeout on the router, segments of "
             "forgotten connections dropped), with robust's keepalive off.")
PATH = "direct"
WATCHDOG = 8.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("frozen_peer"),
                     detail={"detected_by": ("heartbeat", "user-timeout")},
                     note="dead_after 3 s + heartbeat 1 s; TCP_USER_TIMEOUT 3 s"),
    "naive": Expect("blocked"),
}
REMEMBER = "Without keepalive an idle connection can die unseen: detect it when you next use it, then reconnect."
LOOK_FOR = ("Nothing crosses the router during the quiet time. After it, each client's request reaches the router's "
            "lab side again and again and never the server.")


def run(ctx):
    configs = {"robust": RobustConfig(keepalive=False)}
    router_pcap, server_pcap, ports, alive, drops, _ = _idle.run(ctx, EXPECT, configs=configs)
    _idle.prove_forgotten(ctx, sorted(ports), ports, alive, drops, router_pcap, server_pcap)
