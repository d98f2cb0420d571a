"""One implementation waiting for a reply, in a process of its own whose wall clock the lab can move.

The clock-jump scenario starts this with libfaketime preloaded (lab/inlab/faults/clock_jump.py):
its ``time.time()`` then reads the offset the lab writes into a file, while
``time.monotonic()`` is the kernel's and never moves. The runner's own clock is untouched.

    python3 -m lab.inlab.clockchild --impl robust --host server --port 7000 --deadline 2

It connects, then waits up to ``--deadline`` seconds for a message from a server that has
nothing to say (it sends nothing: the server speaks only when spoken to), the way a client waits
for a reply that is not coming. On standard output, one JSON object per line::

    {"event": "waiting", "skew": ...}         connected; the wait has begun
    {"event": "clock", "skew": ..., "t": ..., "m": ..., "u0": ..., "u1": ...}
        every 0.1 s: time.time() - time.monotonic(), monotonic seconds since the wait began,
        time.monotonic(), and the kernel's uptime read just before and just after it
    {"event": "done", "status": "error", "error": "PeerUnresponsive", "t": ...}

``skew`` moves by exactly the jump: that is the proof, measured in the affected process.
``u0`` and ``u1`` come from /proc/uptime, a file libfaketime does not intercept: the kernel's
own clock, read by the faked process, which shows its monotonic clock kept pace with the
kernel's across the jump however long the process was kept off the CPU. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

_lock = threading.Lock()
_finished = False   # set under _lock by the "done" line: no tick may follow it


def emit(**event: object) -> None:
    global _finished
    with _lock:
        if _finished:
            return
        _finished = event.get("event") == "done"
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def skew() -> float:
    return round(time.time() - time.monotonic(), 4)


def uptime() -> float:
    """The kernel's seconds since boot, in 10 ms steps: read from a file, so no preloaded library fakes it."""
    with open("/proc/uptime", encoding="ascii") as f:
        return float(f.read().split()[0])


def reading() -> dict[str, float]:
    """time.monotonic() between two readings of the kernel's uptime (a stall between them widens the bracket)."""
    before = uptime()
    now = time.monotonic()
    return {"m": round(now, 4), "u0": before, "u1": uptime()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.inlab.clockchild")
    parser.add_argument("--impl", choices=("robust", "naive-walltime"), required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deadline", type=float, default=2.0)
    opts = parser.parse_args(argv)
    from lab.sockets import naive
    from lab.sockets.robust import RobustConfig, RobustConnection

    started = time.monotonic()

    def waiting(**facts: object) -> None:
        nonlocal started
        clock = reading()
        started = clock["m"]
        emit(event="waiting", skew=skew(), **clock, **facts)

    if opts.impl == "robust":
        config = RobustConfig(heartbeat_interval=None)
        conn = RobustConnection.connect(opts.host, opts.port, config)

        def wait() -> object:
            waiting()   # its deadline is monotonic: when it is set does not matter
            return conn.recv_frame(timeout=opts.deadline)
    else:
        sock = naive.WallClockDeadlineSocket()
        sock.deadline_s = opts.deadline
        # "waiting" only once its deadline is set: a jump before that would not be a jump *during* the wait.
        sock.on_deadline = lambda deadline: waiting(deadline=round(deadline, 4))
        sock.connect(opts.host, opts.port)
        wait = sock.myreceive

    def tick() -> None:
        # Not time.sleep: under libfaketime 0.9.10 its clock_nanosleep(CLOCK_MONOTONIC) fails with EINVAL
        # (measured); a condition wait, poll and socket timeouts are untouched.
        pause = threading.Event()
        while True:
            pause.wait(0.1)
            clock = reading()
            emit(event="clock", skew=skew(), t=round(clock["m"] - started, 4), **clock)

    threading.Thread(target=tick, daemon=True).start()
    try:
        wait()
        clock = reading()
        emit(event="done", status="completed", t=round(clock["m"] - started, 4), skew=skew(), **clock)
    except Exception as exc:  # noqa: BLE001 - the error is the result
        clock = reading()
        emit(event="done", status="error", error=type(exc).__name__, message=str(exc)[:200],
             t=round(clock["m"] - started, 4), skew=skew(), **clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
