"""What the NFQUEUE handler costs a forwarded TCP connection: RTT and bulk throughput, plain vs queued.

Root only. Builds three namespaces (client - router - server, ``sltest-<random>-*``, removed at
the end whatever happens), starts an echo server (port 7000) and a sink (port 7001) in the server
namespace as a subprocess, and runs the client as a subprocess in the client namespace; the
handler runs in this process, bound in the router namespace, so it has a process (and a GIL)
of its own, as it will in the router agent. Each run measures:

* RTT: the median of ``--rtt-count`` 64-byte request/replies on one connection (TCP_NODELAY);
* throughput: ``--bulk-mb`` MB sent to the sink, timed until the sink's one-byte answer.

"plain" is forwarding with no rule; "nfqueue" adds ``-j NFQUEUE`` for both ports in both
directions with the accept-all policy. Runs alternate (plain, nfqueue, plain...) so machine noise
lands on both; the table shows the medians of ``--runs`` runs each and their ratios.

    sudo .venv/bin/python benchmarks/bench_nfqueue.py [--runs 5] [--rtt-count 200] [--bulk-mb 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.inlab.agent.nfqueue import Handler, NfQueue, accept_all  # noqa: E402

from tests.support.netns import SERVER_IP, Path3, is_root  # noqa: E402

QUEUE = 9
ECHO_PORT, SINK_PORT = 7000, 7001
RUN_TIMEOUT = 120.0

SERVER = r"""
import socket, sys, threading
def serve(port, handle):
    lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((sys.argv[1], port)); lst.listen(8)
    while True:
        conn, _ = lst.accept(); conn.settimeout(60)
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
def sink(conn):
    buf = bytearray(1 << 20)
    with conn:
        while conn.recv_into(buf):
            pass
        conn.sendall(b"k")
threading.Thread(target=serve, args=(int(sys.argv[3]), sink), daemon=True).start()
print("ready", flush=True)
serve(int(sys.argv[2]), echo)
"""

CLIENT = r"""
import json, socket, statistics, sys, time
host, echo_port, sink_port, count, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.create_connection((host, echo_port), timeout=30); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg, rtts = b"x" * 64, []
for _ in range(count + 10):
    t = time.perf_counter(); s.sendall(msg); got = b""
    while len(got) < 64:
        got += s.recv(64 - len(got))
    rtts.append(time.perf_counter() - t)
s.close()
block, total = b"\0" * (1 << 20), mb * (1 << 20)
b = socket.create_connection((host, sink_port), timeout=60)
t = time.perf_counter()
for _ in range(mb):
    b.sendall(block)
b.shutdown(socket.SHUT_WR)
assert b.recv(1) == b"k"
elapsed = time.perf_counter() - t
b.close()
print(json.dumps({"rtt_us": statistics.median(rtts[10:]) * 1e6, "mb_s": total / elapsed / 1e6}))
"""


def rules(path: Path3, action: str) -> None:
    for flag in ("--dport", "--sport"):
        path.exec("router", "iptables", action, "FORWARD", "-p", "tcp", "-m", "multiport", flag,
                  f"{ECHO_PORT},{SINK_PORT}", "-j", "NFQUEUE", "--queue-num", str(QUEUE))


def one_run(path: Path3, count: int, mb: int) -> dict[str, float]:
    proc = path.exec("client", sys.executable, "-c", CLIENT, SERVER_IP, str(ECHO_PORT), str(SINK_PORT), str(count),
                     str(mb), timeout=RUN_TIMEOUT)
    return json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rtt-count", type=int, default=200)
    parser.add_argument("--bulk-mb", type=int, default=50)
    opts = parser.parse_args()
    if not is_root():
        print("bench_nfqueue needs root (network namespaces, iptables, NFQUEUE)", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, float]]] = {"plain": [], "nfqueue": []}
    handler_counts: dict[str, int] = {}
    with Path3.create() as path:
        server = subprocess.Popen(["ip", "netns", "exec", path.names["server"], sys.executable, "-c", SERVER,
                                   SERVER_IP, str(ECHO_PORT), str(SINK_PORT)], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            with path.enter("router"):
                queue = NfQueue(QUEUE)
            handler = Handler(queue, accept_all, owns=True).start()
            try:
                for _ in range(opts.runs):
                    results["plain"].append(one_run(path, opts.rtt_count, opts.bulk_mb))
                    rules(path, "-A")
                    try:
                        results["nfqueue"].append(one_run(path, opts.rtt_count, opts.bulk_mb))
                    finally:
                        rules(path, "-D")
            finally:
                handler_counts = handler.stop()
        finally:
            server.kill()
            server.wait(5)
    med = {mode: {key: statistics.median(r[key] for r in runs) for key in ("rtt_us", "mb_s")}
           for mode, runs in results.items()}
    print(f"NFQUEUE cost on a forwarded hop (veth, {os.cpu_count()} CPUs; medians of {opts.runs} runs each; "
          f"RTT over {opts.rtt_count} 64 B round trips, throughput of {opts.bulk_mb} MB)")
    print(f"{'path':<10} {'RTT µs':>10} {'MB/s':>10}")
    for mode in ("plain", "nfqueue"):
        print(f"{mode:<10} {med[mode]['rtt_us']:>10.1f} {med[mode]['mb_s']:>10.1f}")
    print(f"{'ratio':<10} {med['nfqueue']['rtt_us'] / med['plain']['rtt_us']:>9.3g}x "
          f"{med['nfqueue']['mb_s'] / med['plain']['mb_s']:>9.3g}x   (nfqueue / plain)")
    print(f"handler: {handler_counts['seen']} packets seen, {handler_counts['accepted']} accepted, "
          f"{handler_counts['overruns']} overruns, {handler_counts['verdict_errors']} verdict errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
