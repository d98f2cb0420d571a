"""Command line for the lab servers: one JSON line per event on stdout, stop on SIGTERM/SIGINT.

    python -m lab.server --impl selectors --host 0.0.0.0 --port 7000 --control-port 7001 \\
        --state-dir /var/lib/lab --backlog 4 --mode abort --after 3
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from lab.addresses import DEFAULT_CONTROL_PORT, DEFAULT_PORT
from lab.sockets.framing import DEFAULT_MAX_PAYLOAD
from lab.server import SERVERS, make_server
from lab.server.behaviour import MODES, Behaviour

QUIET_EVENTS = frozenset({"listening", "error", "stopped"})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.server", description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=sorted(SERVERS), default="threaded")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT, help="0 picks a free port; -1 disables it")
    p.add_argument("--state-dir", default=None, help="keep the delivery log here (exactly-once across restarts)")
    p.add_argument("--shared-log", action="store_true",
                   help="with --state-dir: follow a delivery log other servers append to as well "
                        "(the failover pair mounts one volume), so exactly-once holds across both")
    p.add_argument("--backlog", type=int, default=128, help="listen() backlog; small values demo a full queue")
    p.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD)
    p.add_argument("--mode", choices=MODES, default="normal", help="failure behaviour for data connections")
    p.add_argument("--after", type=int, default=0, help="messages per connection before --mode applies")
    p.add_argument("--no-ack-last", action="store_true",
                   help="with close/abort: deliver the last message but do not send its ECHO")
    p.add_argument("--stop-accepting", action="store_true", help="never call accept (fill the backlog)")
    p.add_argument("--quiet", action="store_true",
                   help="print only listening, error and stopped events (for benchmarks)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.shared_log and not args.state_dir:
        parser.error("--shared-log follows the delivery log in a state dir: give --state-dir too")
    try:
        behaviour = Behaviour(mode=args.mode, after=args.after, ack_last=not args.no_ack_last,
                              accepting=not args.stop_accepting)
    except ValueError as exc:
        print(json.dumps({"event": "error", "error": "usage", "message": str(exc)}), flush=True)
        return 2
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        if args.quiet and event["event"] not in QUIET_EVENTS:
            return
        with lock:  # one whole line per event, even from many threads
            sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
            sys.stdout.flush()

    server = make_server(args.impl, args.host, args.port,
                         control_port=None if args.control_port < 0 else args.control_port,
                         state_dir=args.state_dir, backlog=args.backlog, behaviour=behaviour,
                         max_payload=args.max_payload, emit=emit, shared_log=args.shared_log)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
