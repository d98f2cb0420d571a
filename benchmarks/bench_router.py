"""What the router costs the lab's connections: the direct path against the NAT hop, with and without NFQUEUE.

Root only. Builds the three namespaces of ``bench_nfqueue`` (client - router - server,
``sltest-<random>-*``, removed at the end whatever happens) plus a veth straight from the client
to the server, which is the lab's path before the router existed. Three paths, one run:

* ``direct``: client to server on one link (the old single-network lab);
* ``nat hop``: client to the router's own address, DNAT'ed to the server and SNAT'ed to the
  router's server-side address, as lab/inlab/agent/router.py does in the lab;
* ``nat hop + nfqueue``: the same with every segment of both ports queued to the lab's NFQUEUE
  handler (accept-all policy), the cost every packet fault (duplicate, reorder, delay, corrupt)
  pays on top of its own effect.

Each run measures the median RTT of ``--rtt-count`` 64-byte round trips (TCP_NODELAY) and the
throughput of ``--bulk-mb`` MB to a sink. Runs of the three paths alternate, each run starting with another path, so machine noise lands
on all; the table shows medians of ``--runs`` runs and ratios to the direct path.

    sudo .venv/bin/python benchmarks/bench_router.py [--runs 5] [--rtt-count 200] [--bulk-mb 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_nfqueue import CLIENT, ECHO_PORT, RUN_TIMEOUT, SERVER, SINK_PORT  # noqa: E402

from lab.inlab.agent.nfqueue import Handler, NfQueue, accept_all  # noqa: E402
from tests.support.netns import ROUTER_CLIENT_SIDE, ROUTER_SERVER_SIDE, SERVER_IP, Path3, is_root, run  # noqa: E402

QUEUE = 11
DIRECT_CLIENT, DIRECT_SERVER = "10.213.9.1", "10.213.9.2"
PORTS = f"{ECHO_PORT},{SINK_PORT}"


def add_direct_link(path: Path3) -> None:
    c, s = path.names["client"], path.names["server"]
    run("ip", "link", "add", "d0", "netns", c, "type", "veth", "peer", "name", "d1", "netns", s)
    for ns, dev, addr in ((c, "d0", DIRECT_CLIENT), (s, "d1", DIRECT_SERVER)):
        run("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
        run("ip", "-n", ns, "link", "set", dev, "up")


def add_nat(path: Path3) -> None:
    """The lab router's NAT: the router's client-side address forwards the two ports to the server."""
    path.exec("router", "iptables", "-t", "nat", "-A", "PREROUTING", "-d", ROUTER_CLIENT_SIDE, "-p", "tcp",
              "-m", "multiport", "--dports", PORTS, "-j", "DNAT", "--to-destination", SERVER_IP)
    path.exec("router", "iptables", "-t", "nat", "-A", "POSTROUTING", "-d", SERVER_IP, "-p", "tcp",
              "-m", "multiport", "--dports", PORTS, "-j", "SNAT", "--to-source", ROUTER_SERVER_SIDE)


def queue_rules(path: Path3, action: str) -> None:
    for flag in ("--dport", "--sport"):
        path.exec("router", "iptables", action, "FORWARD", "-p", "tcp", "-m", "multiport", flag, PORTS,
                  "-j", "NFQUEUE", "--queue-num", str(QUEUE))


def one_run(path: Path3, host: str, count: int, mb: int) -> dict[str, float]:
    proc = path.exec("client", sys.executable, "-c", CLIENT, host, str(ECHO_PORT), str(SINK_PORT), str(count),
                     str(mb), timeout=RUN_TIMEOUT)
    return json.loads(proc.stdout)


def measure(path: Path3, mode: str, count: int, mb: int) -> dict[str, float]:
    if mode == "direct":
        return one_run(path, DIRECT_SERVER, count, mb)
    if mode == "nat hop":
        return one_run(path, ROUTER_CLIENT_SIDE, count, mb)
    queue_rules(path, "-A")
    try:
        return one_run(path, ROUTER_CLIENT_SIDE, count, mb)
    finally:
        queue_rules(path, "-D")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rtt-count", type=int, default=200)
    parser.add_argument("--bulk-mb", type=int, default=50)
    opts = parser.parse_args()
    if not is_root():
        print("bench_router needs root (network namespaces, iptables, NFQUEUE)", file=sys.stderr)
        return 2
    modes = ("direct", "nat hop", "nat hop + nfqueue")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with Path3.create() as path:
        add_direct_link(path)
        add_nat(path)
        server = subprocess.Popen(["ip", "netns", "exec", path.names["server"], sys.executable, "-c", SERVER,
                                   "0.0.0.0", str(ECHO_PORT), str(SINK_PORT)], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            with path.enter("router"):
                queue = NfQueue(QUEUE)
            handler = Handler(queue, accept_all, owns=True).start()
            try:
                for i in range(opts.runs):
                    # Each run starts with another path, so none is always the first (the coldest).
                    for mode in modes[i % 3:] + modes[:i % 3]:
                        results[mode].append(measure(path, mode, opts.rtt_count, opts.bulk_mb))
            finally:
                counts = handler.stop()
        finally:
            server.kill()
            server.wait(5)
    med = {m: {k: statistics.median(r[k] for r in results[m]) for k in ("rtt_us", "mb_s")} for m in modes}
    base = med["direct"]
    print(f"The router's cost (veth, {os.cpu_count()} CPUs; medians of {opts.runs} runs each, alternating; RTT over "
          f"{opts.rtt_count} 64 B round trips, throughput of {opts.bulk_mb} MB)")
    print(f"{'path':<20} {'RTT µs':>9} {'added µs':>9} {'× direct':>9} {'MB/s':>9} {'× direct':>9}")
    for m in modes:
        print(f"{m:<20} {med[m]['rtt_us']:>9.1f} {med[m]['rtt_us'] - base['rtt_us']:>9.1f} "
              f"{med[m]['rtt_us'] / base['rtt_us']:>8.3g}x {med[m]['mb_s']:>9.1f} {med[m]['mb_s'] / base['mb_s']:>8.3g}x")
    print(f"nfqueue against the plain hop: RTT {med['nat hop + nfqueue']['rtt_us'] / med['nat hop']['rtt_us']:.3g}x, "
          f"throughput {med['nat hop + nfqueue']['mb_s'] / med['nat hop']['mb_s']:.3g}x")
    print(f"handler: {counts['seen']} packets seen, {counts['accepted']} accepted, {counts['overruns']} overruns, "
          f"{counts['verdict_errors']} verdict errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
