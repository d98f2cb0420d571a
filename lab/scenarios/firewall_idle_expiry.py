"""A stateful firewall forgets an idle connection: the next message vanishes, unless keepalive kept it alive."""

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window, segments
from lab.inlab.scenario import Expect, fixed
from lab.scenarios import _idle

NAME = "firewall-idle-expiry"
TITLE = "Stateful firewall forgets an idle connection"
HOWTO = "When Sockets Die"
WIRE = f"""
The router between the hosts is a stateful firewall and NAT: it forwards a connection's
packets only while it has an entry for it, and forgets an entry that has been idle too long
(here {_idle.ESTABLISHED} s; cloud NAT gateways and firewalls use minutes, for example 350 s).
It tells nobody. Both ends still hold an ESTABLISHED connection, and the next segment either
of them sends matches no entry and is dropped: a black hole that opened while nobody was
talking. A connection whose kernel sends keepalive probes more often than the timeout (or
whose application sends heartbeats) refreshes its entry and never meets it.
"""
INJECTION = (f"The router-agent gives new connections to port {DEFAULT_PORT} a conntrack timeout policy of "
             f"{_idle.ESTABLISHED} s established (iptables raw CT --timeout) and drops segments of connections it "
             f"has no entry for (conntrack NEW without SYN, or INVALID); the clients then go quiet for "
             f"{_idle.QUIET} s.")
PATH = "direct"
WATCHDOG = 6.0
EXPECT = {
    "robust": Expect("completed", within=fixed(1.0),
                     note="its keepalive probes (every 1 s when idle) keep the firewall's entry alive"),
    "naive": Expect("blocked", note="its next request is dropped by the router, retransmission after retransmission"),
}
REMEMBER = "Idle connections die in the middle: keepalive (or heartbeats) shorter than the firewall's timeout."
LOOK_FOR = ("During the quiet time robust's keepalive probes cross the router every second; naive sends nothing. "
            "After it, naive's request reaches the router's lab side again and again and never the server.")


def run(ctx):
    router_pcap, server_pcap, ports, alive, drops, (quiet_from, quiet_to) = _idle.run(ctx, EXPECT)
    quiet = Window(quiet_from, quiet_to)
    robust = ports.get("robust", set())
    probes = segments(router_pcap, quiet, dst_port=DEFAULT_PORT, peer_ports=robust)
    ctx.prove("robust's keepalive probes crossed the router while it was quiet, and its entry was still there",
              bool(robust) and len(probes) >= 2 and robust <= alive,
              f"{len(probes)} segments from robust's port {sorted(robust)} on the router's lab side in the quiet "
              f"{quiet_to - quiet_from:.1f} s; ESTABLISHED entries for ports {sorted(alive)}")
    if "naive" in ports:
        _idle.prove_forgotten(ctx, ["naive"], ports, alive, drops, router_pcap, server_pcap)
