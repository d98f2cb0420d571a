"""What the two firewall-idle-expiry scenarios share: the run and the proofs on the router's conntrack table.

The fault goes in before anyone connects (a timeout policy is attached to new connections).
The clients then talk, go quiet for longer than the firewall's idle timeout, and talk again.
During the quiet time the lab reads the router's conntrack table: an entry that a keepalive
probe or heartbeat refreshed is still there, one left alone is gone.
"""

import time

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window, segments
from lab.inlab.proofs import judged
from lab.inlab.workloads import converse

ESTABLISHED = 3          # seconds the router keeps an idle ESTABLISHED entry
QUIET = ESTABLISHED + 2  # how long the clients stay quiet


def run(ctx, expect, configs=None):
    router_side = ctx.capture("router-lab")
    server_side = ctx.capture("server")
    ctx.apply("idle-expiry", port=DEFAULT_PORT, established=ESTABLISHED)
    seen = {}

    def quiet():
        # Every worker has had its conversation and now sits at its fault point, saying nothing.
        started = time.time()
        time.sleep(QUIET - 0.5)
        seen["entries"] = ctx.router_agent.conntrack(DEFAULT_PORT)
        time.sleep(0.5)
        seen["quiet"] = (started, time.time())
        ctx.fault_at = ctx.mark("lab", f"quiet for {QUIET} s: the firewall forgets a connection idle for "
                                       f"{ESTABLISHED} s", entries=len(seen["entries"]))
        ctx.fault_wall = time.time()

    ctx.side_by_side(converse(before=2, after=1), fault=quiet, configs=configs)
    drops = ctx.router_agent.path_counters()["idle_drops"]
    router_side.stop()
    server_side.stop()
    ports = {impl: ctx.client_ports(impl) for impl in judged(ctx, expect)}
    alive = {e["sport"] for e in seen.get("entries", []) if e["state"] == "ESTABLISHED"}
    return router_side.pcap, server_side.pcap, ports, alive, drops, seen.get("quiet", (0.0, 0.0))


def prove_forgotten(ctx, impls, ports, alive, drops, router_pcap, server_pcap):
    """The idle connections lost their entries, and what they sent next got no further than the router."""
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    watched = set().union(*(ports[i] for i in impls))
    arrived = segments(router_pcap, window, dst_port=DEFAULT_PORT, peer_ports=watched)
    passed = segments(server_pcap, window, dst_port=DEFAULT_PORT, peer_ports=watched)
    ctx.prove(f"the firewall forgot {', '.join(impls)}'s idle connection: no conntrack entry at the end of the quiet "
              "time, and its next segments got no further than the router",
              bool(watched) and not (watched & alive) and bool(arrived) and not passed and drops >= len(arrived),
              f"client ports {sorted(watched)}; ESTABLISHED entries for ports {sorted(alive)}; {len(arrived)} segments "
              f"reached the router's lab side after the quiet time, {len(passed)} the server; the router dropped "
              f"{drops} packets of forgotten connections")
