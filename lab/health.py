"""Container healthchecks: ``python3 -m lab.health HOST:PORT [HOST:PORT ...]``.

Exits 0 when every address accepts a TCP connection within two seconds, 1
otherwise (saying which one failed). The connection is closed at once; the
servers treat a connect-then-close as a client that left between messages.
"""

from __future__ import annotations

import socket
import sys


def check(address: str, timeout: float = 2.0) -> str | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return f"{address!r} is not HOST:PORT"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"{address}: {exc}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python3 -m lab.health HOST:PORT [HOST:PORT ...]", file=sys.stderr)
        return 2
    problems = [p for p in map(check, argv) if p]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
