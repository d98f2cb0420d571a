# Ephemeral port exhaustion in the client's namespace: nothing at all goes on the wire. The
# client-agent (root, in the client's network namespace) holds a listening socket on every
# port of the ephemeral range but a few (``spare``), then connects to the target server from
# those few until connect() fails. From then on a connect() to that server from the client's
# namespace (the judge, the robust and naive clients, the sandboxed program) finds no local
# port the kernel may use for that destination and fails at once with EADDRNOTAVAIL: no SYN
# is sent. Other destinations still work: a port connect() handed out can carry a connection
# to another address or port (another 4-tuple). The range stays as it is (/proc/sys is
# read-only here); taking every port of it is what a tiny range amounts to. Cleared by the
# agent's release_ports (and its reset): every socket closed, the holder processes gone.
from __future__ import annotations

import dataclasses
import errno
import socket
import struct
import time
from pathlib import Path
from typing import Any

from lab.addresses import CONTROL_PORTS, SERVER_HOST, SERVER_PORTS
from lab.inlab import tcptable
from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, Server, param, register

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
SLACK = 16            # ports of the range the kernel's table may lack (a bound socket that does not listen is in no row)
PROBE_TIMEOUT = 2.0


@dataclasses.dataclass(frozen=True)
class ExhaustPortsParams:
    server: Server = "threaded"                    # the destination exhausted: this server's data port, direct
    spare: int = param(4, ge=1, le=64)             # ports left out of the claim, then used for the destination
    timeout: float = param(20.0, gt=0, le=30)      # seconds the agent may take (claiming ~28k ports takes ~1 s)


def local_range(path: Path = RANGE) -> tuple[int, int]:
    low, high = path.read_text().split()
    return int(low), int(high)


def probe(address: tuple[str, int]) -> tuple[int | None, float]:
    """(errno of a connect() to ``address`` from this namespace or None, seconds it took); closed with RST."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(PROBE_TIMEOUT)
    started = time.monotonic()
    try:
        sock.connect(address)
        # An abortive close leaves no TIME_WAIT behind, which would hold one of the few ports left.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return None, time.monotonic() - started
    except OSError as exc:
        return exc.errno if exc.errno is not None else -1, time.monotonic() - started
    finally:
        sock.close()


@register
class ExhaustPorts(Fault):
    name = "exhaust-ports"
    params: ExhaustPortsParams

    def __init__(self, ctx: FaultContext, params: ExhaustPortsParams) -> None:
        super().__init__(ctx, params)
        self.active = False
        self.reply: dict[str, Any] = {}
        self.released: dict[str, Any] | None = None
        self.target: tuple[str, int] | None = None
        self.range: tuple[int, int] | None = None
        self.held = 0                                 # ports of the range in the kernel's table
        self.to_target: list[tcptable.Row] = []       # the agent's connections to the target
        self.errno_seen: int | None = None            # what a connect() to the target got here
        self.probe_s: float | None = None
        self.other_errno: int | None = None           # ... and a connect() to another destination

    def apply(self) -> None:
        port = SERVER_PORTS[self.params.server]
        self.target = (socket.gethostbyname(SERVER_HOST), port)
        self.active = True
        self.reply = dict(self.ctx.client_agent.exhaust_ports(self.target, spare=self.params.spare,
                                                             timeout=self.params.timeout) or {})
        self.ctx.mark("lab", "exhaust-ports: the agent holds the range", claimed=self.reply.get("claimed"),
                      connections=len(self.reply.get("connections", [])), claim_s=self.reply.get("claim_s"))
        # The proofs read the kernel, from this namespace, not the agent's reply (which a wrong
        # request would get right too): the range, its ports in /proc/net/tcp, and connect() itself.
        self.range = low, high = local_range()
        rows = tcptable.read()
        self.held = len({r.local[1] for r in rows if low <= r.local[1] <= high})
        self.to_target = [r for r in rows if r.remote == self.target and r.state == tcptable.ESTABLISHED
                          and low <= r.local[1] <= high and r.uid == 0]
        self.errno_seen, self.probe_s = probe(self.target)
        self.other_errno, _ = probe((self.target[0], CONTROL_PORTS[self.params.server]))
        size = high - low + 1
        self.ctx.prove(f"the client's namespace holds every ephemeral port but a few ({low}-{high})",
                       self.held >= size - SLACK,
                       f"{self.held} of the {size} ports have a socket in the client's /proc/net/tcp "
                       f"(at least {size - SLACK} needed); the agent claimed {self.reply.get('claimed')} "
                       f"in {self.reply.get('claim_s')} s")
        self.ctx.prove(f"the spare ports carry connections to {SERVER_HOST}:{port}",
                       len(self.to_target) >= 1,
                       f"{len(self.to_target)} ESTABLISHED connections of uid 0 to {self.target[0]}:{port} from "
                       f"ports {sorted(r.local[1] for r in self.to_target)}")
        shown = errno.errorcode.get(self.errno_seen, str(self.errno_seen)) if self.errno_seen else "it connected"
        self.ctx.prove(f"connect() to {SERVER_HOST}:{port} from the client fails with EADDRNOTAVAIL",
                       self.errno_seen == errno.EADDRNOTAVAIL,
                       f"a connect() from the client's namespace: {shown} after {self.probe_s * 1000:.2f} ms")
        other = CONTROL_PORTS[self.params.server]
        self.ctx.prove(f"connect() to another destination ({SERVER_HOST}:{other}) still works",
                       self.other_errno is None,
                       "connected" if self.other_errno is None
                       else errno.errorcode.get(self.other_errno, str(self.other_errno)))
        # The fault exists from here on: claiming the range took a second or so.
        self.ctx.fault_at = self.ctx.mark("lab", "exhaust-ports: connect() to the server has no port left",
                                          errno=shown)

    def facts(self) -> dict[str, Any]:
        return {"range": list(self.range) if self.range else None, "held": self.held,
                "claimed": self.reply.get("claimed"), "unclaimed": self.reply.get("unclaimed"),
                "by_address": self.reply.get("by_address"), "claim_s": self.reply.get("claim_s"),
                "agent_s": self.reply.get("elapsed_s"), "holders": len(self.reply.get("holders", [])),
                "connections": sorted(r.local[1] for r in self.to_target),
                "probe_errno": errno.errorcode.get(self.errno_seen or 0) if self.errno_seen else None,
                "probe_ms": round(self.probe_s * 1000, 3) if self.probe_s is not None else None,
                "released": self.released}

    def clear(self) -> None:
        if self.active:
            self.active = False
            self.released = self.ctx.client_agent.release_ports()
            self.ctx.mark("lab", "exhaust-ports: released", **{k: v for k, v in self.released.items()
                                                                 if isinstance(v, (int, float))})
