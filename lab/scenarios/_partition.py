"""What the two one-way partitions share: the run, and a proof per direction on both sides of the router.

A one-way partition is proven on each direction separately: the way that is cut carries the
subjects' packets up to the router and no further, the way that is open still delivers. The
captures are the router's lab side (where the clients' packets arrive and the server's leave
towards them) and the server's own interface (behind the router).
"""

from lab.addresses import DEFAULT_PORT, SERVER_HOST
from lab.evidence.anchor import Window, segments
from lab.evidence.streams import resent
from lab.inlab.stalled import StalledReply
from lab.inlab.workloads import converse


def run(ctx, way):
    router_side = ctx.capture("router-lab")
    server_side = ctx.capture("server")
    # The subjects cannot promise traffic on the way that stays open (cut towards the server, the
    # server has nothing to answer). This lab connection can: the server owes it bytes and its
    # kernel keeps sending window probes, which the client's kernel answers.
    owed = StalledReply(SERVER_HOST, DEFAULT_PORT).open()
    ctx.on_cleanup(owed.close)
    handle = {}

    def fault():
        handle["partition"] = ctx.apply("partition", port=DEFAULT_PORT, way=way)

    ctx.side_by_side(converse(before=2, after=1), fault=fault)
    counts = handle["partition"].counts(target="DROP")
    router_side.stop()
    server_side.stop()
    window = Window(ctx.fault_wall, ctx.teardown_wall)
    watched = ctx.client_ports() | {owed.local_port}
    if way == "to-server":
        prove_cut(ctx, "the client's", arrived=segments(router_side.pcap, window, dst_port=DEFAULT_PORT,
                                                         peer_ports=ctx.client_ports()),
                  passed=segments(server_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=watched),
                  dropped=counts["in"], window=window, toward="the server")
        prove_open(ctx, "the server's window probes to the lab's stalled connection",
                   segments(router_side.pcap, window, src_port=DEFAULT_PORT, peer_ports={owed.local_port}),
                   owed, window, "reached the router's lab side, on their way to the client")
        prove_resent(ctx, router_side.pcap, window)
    else:
        prove_cut(ctx, "the server's", arrived=segments(server_side.pcap, window, src_port=DEFAULT_PORT,
                                                         peer_ports=ctx.client_ports()),
                  passed=segments(router_side.pcap, window, src_port=DEFAULT_PORT, peer_ports=watched),
                  dropped=counts["out"], window=window, toward="the client")
        data = [s for s in segments(server_side.pcap, window, dst_port=DEFAULT_PORT, peer_ports=ctx.client_ports())
                if s.payload_len]
        prove_open(ctx, "the clients' messages after the fault", data, None, window,
                   "reached the server's interface (and the server answered them)")
        prove_resent(ctx, server_side.pcap, window)
    ctx.prove("the partition cut one direction only: no DROP rule of the fault matched the other way",
              counts["out" if way == "to-server" else "in"] == 0,
              f"DROP matched {counts['in']} packets towards the server, {counts['out']} towards the client")


def prove_cut(ctx, whose, *, arrived, passed, dropped, window, toward):
    per_port = {}
    for s in arrived:
        port = s.src.port if s.dst.port == DEFAULT_PORT else s.dst.port
        per_port[port] = per_port.get(port, 0) + 1
    ports = ctx.client_ports()
    ctx.prove(f"after the fault {whose} segments reached the router, on every subject connection, and none "
              f"went on towards {toward}",
              len(ports) == len(ctx.judged) and set(per_port) >= ports and not passed and dropped >= len(arrived) > 0,
              ", ".join(f":{p} {n} segments" for p, n in sorted(per_port.items()))
              + f" at the router before the cut; {len(passed)} beyond it; the router's DROP matched {dropped}; "
              f"window {window.describe(ctx.fault_wall)}")


def prove_open(ctx, what, seen, owed, window, where):
    ok = bool(seen) and (owed is None or owed.owed > 0)
    extra = f" (the server owed {owed.owed} bytes on :{owed.local_port})" if owed is not None else ""
    ctx.prove(f"the other direction stayed open: {what} {where}", ok,
              f"{len(seen)} segments ({sum(s.payload_len for s in seen)} B of data){extra} in "
              f"{window.describe(ctx.fault_wall)}")


def prove_resent(ctx, pcap, window):
    ports = sorted(ctx.client_ports())
    again = {p: resent(pcap, window, dst_port=DEFAULT_PORT, peer_ports={p}) for p in ports}
    again_back = {p: resent(pcap, window, src_port=DEFAULT_PORT, peer_ports={p}) for p in ports}
    ok = bool(ports) and all(again[p] or again_back[p] for p in ports)
    ctx.prove("the sender's kernel kept retransmitting into the cut", ok,
              ", ".join(f":{p} {len(again[p])} from the client, {len(again_back[p])} from the server" for p in ports))
