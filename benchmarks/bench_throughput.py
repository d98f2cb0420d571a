"""Echo throughput on loopback: how much the lab's careful client costs against the simplest correct loop.

One run (well under 3 minutes) measures, against the lab's ``selectors``
server started as a subprocess on 127.0.0.1:

* request/response echo of 64 B, 4 KiB and 1 MiB messages, one connection, with
  (a) the simplest correct length-prefixed loop over a plain blocking socket (the baseline),
  (b) ``lab.sockets.robust.RobustConnection.request`` (skipped with a note if it cannot be imported),
  (c) an asyncio streams client (``open_connection`` + ``readexactly``);
* the server under 1000 concurrent connections (64 B round trips from a
  single-threaded ``selectors`` client): round trips/s, p50 and p99 latency.

Each cell runs for a fixed slice of time and is repeated; contenders are
interleaved (rotating order each round) so machine noise lands on all of them.
Medians are printed, with each contender's ratio to the baseline.

    python benchmarks/bench_throughput.py [--repeats 5] [--cell-seconds 0.4] [--conns 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.sockets.framing import HEADER, HEADER_SIZE, SEQ, Decoder, FrameType, encode_data  # noqa: E402

HOST = "127.0.0.1"
SIZES = {"64 B": 64, "4 KiB": 4096, "1 MiB": 1 << 20}
Cell = Callable[[int, int, float], tuple[int, float]]
"""(port, body size, seconds) -> (round trips completed, seconds actually spent)."""


# -- the server ---------------------------------------------------------------------------------------

def start_server(impl: str, backlog: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.server", "--impl", impl, "--host", HOST, "--port", "0",
         "--control-port", "-1", "--backlog", str(backlog), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    event = json.loads(line)
    assert event["event"] == "listening", line
    # Keep reading what the server prints (its error lines): a pipe nobody drains fills up
    # after 64 KiB and the server would block on print, stalling every connection.
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return proc, int(event["port"])


SERVER_ERRORS: list[str] = []


def _drain(stream: Any) -> None:
    for line in stream:
        if '"error"' in line:
            SERVER_ERRORS.append(line.strip())


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- (a) the baseline ----------------------------------------------------------------------------------

def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed mid-message")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def baseline_cell(port: int, size: int, seconds: float) -> tuple[int, float]:
    body = os.urandom(size)
    with socket.create_connection((HOST, port)) as sock:
        seq, done = 0, 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            seq += 1
            sock.sendall(HEADER.pack(SEQ.size + size, FrameType.DATA) + SEQ.pack(seq) + body)
            length, _ = HEADER.unpack(_recv_exactly(sock, HEADER_SIZE))
            payload = _recv_exactly(sock, length)
            if len(payload) != SEQ.size + size:
                raise AssertionError("short echo")
            done += 1
            now = time.perf_counter()
            if now >= end:
                return done, now - start


# -- (b) the robust connection ------------------------------------------------------------------------

def robust_cell_or_reason() -> Cell | str:
    try:
        from lab.sockets.robust import RobustConnection  # being written alongside; may not exist yet
    except Exception as exc:  # noqa: BLE001 - any import failure just means "no column"
        return f"lab.sockets.robust unavailable ({type(exc).__name__}: {exc})"

    def cell(port: int, size: int, seconds: float) -> tuple[int, float]:
        body = os.urandom(size)
        conn = RobustConnection.connect(HOST, port)
        try:
            done = 0
            start = time.perf_counter()
            end = start + seconds
            while True:
                conn.request(body)
                done += 1
                now = time.perf_counter()
                if now >= end:
                    return done, now - start
        finally:
            conn.close()

    return cell


# -- (c) asyncio streams -------------------------------------------------------------------------------

async def _asyncio_run(port: int, size: int, seconds: float) -> tuple[int, float]:
    body = os.urandom(size)
    reader, writer = await asyncio.open_connection(HOST, port, limit=2 << 20)
    try:
        seq, done = 0, 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            seq += 1
            writer.write(HEADER.pack(SEQ.size + size, FrameType.DATA) + SEQ.pack(seq) + body)
            await writer.drain()
            length, _ = HEADER.unpack(await reader.readexactly(HEADER_SIZE))
            await reader.readexactly(length)
            done += 1
            now = time.perf_counter()
            if now >= end:
                return done, now - start
    finally:
        writer.close()
        await writer.wait_closed()


def asyncio_cell(port: int, size: int, seconds: float) -> tuple[int, float]:
    return asyncio.run(_asyncio_run(port, size, seconds))


# -- many connections ---------------------------------------------------------------------------------

def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def crowd_round(port: int, conns: int, seconds: float) -> tuple[int, float, list[float]]:
    """``conns`` connections each doing 64 B round trips as fast as the server answers."""
    sel = selectors.DefaultSelector()
    socks = []
    body = os.urandom(64)
    msg = encode_data(1, body)
    try:
        for _ in range(conns):
            s = socket.create_connection((HOST, port))
            s.setblocking(False)
            socks.append(s)
        state: dict[socket.socket, list[Any]] = {}
        for s in socks:
            s.send(msg)  # 18 bytes into an empty buffer: always taken whole
            state[s] = [Decoder(), time.perf_counter()]
            sel.register(s, selectors.EVENT_READ)
        # Warm-up: the server first has to accept all of them; time only the steady state,
        # from when every connection has had its first answer (bounded).
        waiting = set(socks)
        warm_deadline = time.perf_counter() + 60
        while waiting and time.perf_counter() < warm_deadline:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj  # type: ignore[assignment]
                dec = state[s][0]  # type: ignore[index]
                dec.receive_data(s.recv(65536))  # type: ignore[union-attr]
                for _frame in dec:
                    waiting.discard(s)  # type: ignore[arg-type]
                    s.send(msg)  # type: ignore[union-attr]
                    state[s][1] = time.perf_counter()  # type: ignore[index]
        if waiting:
            raise RuntimeError(f"{len(waiting)} of {conns} connections never got an answer in 60 s")
        latencies: list[float] = []
        start = time.perf_counter()
        end = start + seconds
        while (now := time.perf_counter()) < end:
            for key, _ in sel.select(timeout=end - now):
                s = key.fileobj  # type: ignore[assignment]
                dec, sent_at = state[s]  # type: ignore[index]
                dec.receive_data(s.recv(65536))  # type: ignore[union-attr]
                for _frame in dec:
                    t = time.perf_counter()
                    latencies.append(t - sent_at)
                    s.send(msg)  # type: ignore[union-attr]
                    state[s][1] = t  # type: ignore[index]
        return len(latencies), time.perf_counter() - start, latencies
    finally:
        sel.close()
        for s in socks:
            s.close()


# -- the run ------------------------------------------------------------------------------------------

def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cell-seconds", type=float, default=0.4)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--crowd-seconds", type=float, default=2.0)
    ap.add_argument("--crowd-repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    contenders: dict[str, Cell] = {"baseline": baseline_cell}
    notes = []
    robust = robust_cell_or_reason()
    if isinstance(robust, str):
        notes.append(f"(b) robust: skipped, {robust}")
    else:
        contenders["robust"] = robust
    contenders["asyncio"] = asyncio_cell

    limit = raise_nofile(2 * args.conns + 256)  # the client's sockets and the server's
    proc, port = start_server("selectors", backlog=min(args.conns, 4096))
    try:
        names = list(contenders)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for rnd in range(args.repeats):
            for label, size in SIZES.items():
                order = names[rnd % len(names):] + names[:rnd % len(names)]  # rotate who goes first
                for name in order:
                    done, spent = contenders[name](port, size, args.cell_seconds)
                    results.setdefault((label, name), []).append((done / spent, done * size / spent / 1e6))
        crowd: list[tuple[float, float, float]] = []
        for _ in range(args.crowd_repeats):
            n, spent, lat = crowd_round(port, args.conns, args.crowd_seconds)
            lat.sort()
            crowd.append((n / spent, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3))
    finally:
        stop_server(proc)

    print(f"Echo round trips over loopback against the lab selectors server "
          f"(median of {args.repeats} x {args.cell_seconds}s cells, contenders interleaved)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, RLIMIT_NOFILE {limit}")
    print()
    header = f"{'size':>6} | {'contender':<9} | {'msgs/s':>10} | {'MB/s':>8} | {'vs baseline':>11}"
    print(header)
    print("-" * len(header))
    for label in SIZES:
        base = statistics.median(r for r, _ in results[(label, "baseline")])
        for name in contenders:
            rates = results[(label, name)]
            r = statistics.median(x for x, _ in rates)
            mb = statistics.median(y for _, y in rates)
            print(f"{label:>6} | {name:<9} | {fmt_rate(r):>10} | {mb:>8.1f} | {r / base:>10.2f}x")
    print()
    rt = statistics.median(c[0] for c in crowd)
    p50 = statistics.median(c[1] for c in crowd)
    p99 = statistics.median(c[2] for c in crowd)
    print(f"selectors server, {args.conns} concurrent connections, 64 B round trips "
          f"(median of {args.crowd_repeats} x {args.crowd_seconds}s):")
    print(f"  {fmt_rate(rt)} round trips/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    for note in notes:
        print("note:", note)
    if SERVER_ERRORS:
        print(f"note: the server reported {len(SERVER_ERRORS)} connection errors (clients closing mid-frame at "
              f"the end of a timed cell), e.g. {SERVER_ERRORS[0][:160]}")
    print(f"\ntotal run time {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
