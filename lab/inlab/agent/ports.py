"""Ephemeral port exhaustion in this namespace: every port of the range claimed, a few left for one target.

The client-agent's ``exhaust_ports`` op (:mod:`lab.inlab.agent.service`) uses this. ``/proc/sys``
is read-only in the lab's containers, so the range itself cannot be made tiny; instead every
port of it is taken, which is what a tiny range amounts to:

1. :func:`read_range` reads ``net.ipv4.ip_local_port_range`` (readable; 32768-60999 here, 28232 ports).
2. :func:`plan` sets ``spare`` ports aside, from the top of the range, among those that no row of
   the namespace's ``/proc/net/tcp`` uses; every other port is to be claimed.
3. :class:`Holder` processes (``python3 -m lab.inlab.agent.ports``, :func:`holder_main`) each
   :func:`claim` up to :data:`CHUNK` ports: a TCP socket bound to ``127.0.0.1:PORT`` and listening.
   One process cannot hold them all: this engine caps a container's open files at 20000.
4. :func:`connect_all` then connects to the target until connect() fails with EADDRNOTAVAIL:
   the spare ports now carry connections to that one destination.

Why bound sockets stop connect(): when connect() picks a local port itself (autobind,
``__inet_hash_connect``), it skips every port whose bind bucket was made by ``bind()``
(``tb->fastreuse >= 0``); only buckets that connect() created may be shared, by connections
with different 4-tuples. So a port that someone bound is never handed out, whether that
socket listens or not, and whatever address it was bound to: the bucket is per port. A port
connect() handed out stays usable for any *other* destination. Measured on this kernel
(6.18, a scratch namespace with a 10-port range): bound-only and listening sockets, on
127.0.0.1 or 0.0.0.0, both made the third connect to a destination fail with EADDRNOTAVAIL
while a connect to another destination still got one of the two connected ports. The sockets
listen only so that the kernel's table shows them: a bound socket that does not listen is in no
row of ``/proc/net/tcp``, a listening one is a LISTEN row, so the scenario can count them.

127.0.0.1 first, then 127.0.0.2 and 127.0.0.3: a bind conflicts only with a socket on the same
address or the wildcard, so a port whose TIME_WAIT (from 172.x, or from 127.0.0.1 to an
agent) forbids 127.0.0.1 is still claimed on another loopback address (measured: binding
127.0.0.5 over a 127.0.0.1 TIME_WAIT succeeds and autobind skips that port from then on).
The claim then also outlives that TIME_WAIT: the port does not come free when it expires.

Standard library only: it runs in the agent's container.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lab.toolerrors import SetupError

RANGE_FILE = Path("sys/net/ipv4/ip_local_port_range")   # under the proc root
CHUNK = 10000                 # ports one holder process claims: well under the container's 16384 open files
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
MAX_SPARE = 64
DEFAULT_DEADLINE = 20.0       # seconds for the whole exhaustion: claiming ~28k ports takes about one
MAX_DEADLINE = 30.0
CONNECT_TIMEOUT = 2.0
RELEASE_WAIT = 10.0           # a holder that has not closed its sockets by then is killed (the kernel closes them)
EXTRA_CONNECTS = 4            # connects beyond the spare and unclaimed ports before "not exhausted"
SHOWN = 20                    # unclaimed ports listed in a reply


class PortsError(SetupError):
    """The exhaustion could not be carried out (message says why); the agent replies ``ok: false``."""


# Pure parts ---------------------------------------------------------------------------------------

def parse_range(text: str) -> tuple[int, int]:
    """``"32768\\t60999\\n"`` → (32768, 60999); anything else raises ValueError."""
    fields = text.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise ValueError(f"ip_local_port_range should hold two port numbers; got {text!r}")
    low, high = int(fields[0]), int(fields[1])
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"ip_local_port_range {low}-{high} is not a range of ports")
    return low, high


def read_range(proc_root: Path = Path("/proc")) -> tuple[int, int]:
    try:
        return parse_range((proc_root / RANGE_FILE).read_text())
    except OSError as exc:
        raise PortsError(f"cannot read {proc_root / RANGE_FILE}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PortsError(str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class Plan:
    low: int
    high: int
    claim: tuple[int, ...]     # ports to bind, ascending
    spare: tuple[int, ...]     # ports left for the connections to the target, descending

    @property
    def size(self) -> int:
        return self.high - self.low + 1


def plan(low: int, high: int, spare: int, used: Iterable[int] = ()) -> Plan:
    """Claim every port of [low, high] but ``spare`` ones: the highest that no known socket uses."""
    if not 1 <= spare <= MAX_SPARE:
        raise ValueError(f"spare must be from 1 to {MAX_SPARE}; got {spare}")
    size = high - low + 1
    if spare >= size:
        raise ValueError(f"the range {low}-{high} has {size} ports: too few to leave {spare} spare")
    taken = set(used)
    chosen = [p for p in range(high, low - 1, -1) if p not in taken][:spare]
    if len(chosen) < spare:
        raise ValueError(f"only {len(chosen)} ports of {low}-{high} are unused; {spare} spare asked")
    left = set(chosen)
    return Plan(low, high, tuple(p for p in range(low, high + 1) if p not in left), tuple(chosen))


def chunks(ports: Sequence[int], size: int = CHUNK) -> list[list[int]]:
    """The ports in runs of at most ``size``: one holder process each."""
    if size < 1:
        raise ValueError("a chunk holds at least one port")
    return [list(ports[i:i + size]) for i in range(0, len(ports), size)]


def parse_target(value: Any) -> tuple[str, int]:
    """``["172.18.0.3", 7000]`` → ("172.18.0.3", 7000): a dotted IPv4 address, not loopback, and a port."""
    accepted = 'a target is [IPv4 address, TCP port], e.g. ["172.18.0.3", 7000]'
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{accepted}; got {value!r}")
    address, port = value
    if not isinstance(address, str) or type(port) is not int or not 1 <= port <= 65535:
        raise ValueError(f"{accepted}; got {value!r}")
    try:
        packed = socket.inet_aton(address)
    except OSError:
        raise ValueError(f"{accepted}; {address!r} is not an IPv4 address") from None
    if socket.inet_ntoa(packed) != address:
        raise ValueError(f"{accepted}; write the address in full dotted form, not {address!r}")
    if packed[0] == 127:
        raise ValueError(f"{accepted}; {address} is loopback, where the lab's own channels (the agent's API, "
                         "the driver) and the claimed ports live")
    return address, port


# Claiming ports (the holder) ----------------------------------------------------------------------

@dataclasses.dataclass
class Claim:
    socks: list[socket.socket] = dataclasses.field(default_factory=list)
    by_address: dict[str, int] = dataclasses.field(default_factory=dict)   # address → ports claimed on it
    unclaimed: dict[int, str] = dataclasses.field(default_factory=dict)    # port → errno name of the last try
    timed_out: bool = False

    def close(self) -> int:
        closed = 0
        while self.socks:
            try:
                self.socks.pop().close()
                closed += 1
            except OSError:
                pass
        return closed


def claim(ports: Iterable[int], deadline: float, *, addresses: Sequence[str] = ADDRESSES, listen: bool = True,
          clock: Callable[[], float] = time.monotonic) -> Claim:
    """Bind (and listen on) each port, on the first of ``addresses`` that takes it; stop at ``deadline``.

    ``deadline`` is a ``clock()`` value. A port no address takes is noted in ``unclaimed`` with
    its errno; running out of descriptors (EMFILE, ENFILE) stops the claim and is raised, with
    everything claimed so far closed again.
    """
    held = Claim()
    for n, port in enumerate(ports):
        if n % 256 == 0 and clock() >= deadline:
            held.timed_out = True
            break
        last = "?"
        for address in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # EMFILE raises here
            try:
                sock.bind((address, port))
                if listen:
                    sock.listen(0)
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    held.close()
                    raise
                last = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                continue
            held.socks.append(sock)
            held.by_address[address] = held.by_address.get(address, 0) + 1
            break
        else:
            held.unclaimed[port] = last
    return held


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (within the hard limit); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def holder_main(stdin: Any = None, stdout: Any = None) -> int:
    """One holder: reads ``{"ports": [...], "deadline_s": S}``, claims, reports, holds until stdin ends.

    Its first line out is the claim (``claimed``, ``by_address``, ``unclaimed``, ``timed_out``,
    ``elapsed_s``, or ``error``); then it waits for a line or end of file on stdin (the agent
    releasing, or the agent gone), closes every socket and reports ``{"released": N}``.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout

    def say(obj: dict[str, Any]) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    try:
        order = json.loads(stdin.readline() or "{}")
        ports = [int(p) for p in order["ports"]]
        deadline_s = float(order.get("deadline_s", DEFAULT_DEADLINE))
    except (ValueError, KeyError, TypeError) as exc:
        say({"error": f"bad order: {exc}"})
        return 2
    started = time.monotonic()
    try:
        limit = raise_nofile(len(ports) + 64)
        held = claim(ports, started + deadline_s)
    except OSError as exc:
        say({"error": f"{errno.errorcode.get(exc.errno or 0, '')}: {exc.strerror or exc} "
                      f"(open-files limit {resource.getrlimit(resource.RLIMIT_NOFILE)})"})
        return 1
    say({"pid": os.getpid(), "claimed": len(held.socks), "by_address": held.by_address,
         "unclaimed": {str(p): e for p, e in held.unclaimed.items()}, "timed_out": held.timed_out,
         "nofile": limit, "elapsed_s": round(time.monotonic() - started, 3)})
    stdin.readline()    # "release", or end of file when the agent went away
    say({"released": held.close()})
    return 0


class Holder:
    """One holder process, as the agent sees it: start, read its claim, release."""

    def __init__(self, ports: Sequence[int], deadline_s: float, argv: Sequence[str] | None = None) -> None:
        self.ports = list(ports)
        self.proc = subprocess.Popen(list(argv or [sys.executable, "-m", "lab.inlab.agent.ports"]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"ports": self.ports, "deadline_s": deadline_s}) + "\n")
        self.proc.stdin.flush()
        self.result: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _line(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0.0))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        try:
            return json.loads(line) if line else None
        except ValueError:
            return {"error": f"not JSON: {line[:200]!r}"}

    def wait_claim(self, timeout: float) -> dict[str, Any]:
        got = self._line(timeout)
        self.result = got if got is not None else {"error": f"no claim within {timeout:.1f} s"}
        return self.result

    def release(self, timeout: float = RELEASE_WAIT) -> int:
        """Close its sockets (by asking; by SIGKILL past ``timeout``); returns how many it says it closed."""
        released = 0
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("release\n")
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        if self.result.get("claimed"):
            got = self._line(timeout)
            released = int(got.get("released", 0)) if got else 0
        try:
            self.proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self.proc.kill()        # the kernel closes what it held
            self.proc.wait(timeout=5.0)
            released = released or int(self.result.get("claimed", 0))
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return released


# Connecting from the spare ports ------------------------------------------------------------------

def connect_all(target: tuple[str, int], limit: int, deadline: float, *,
                clock: Callable[[], float] = time.monotonic) -> tuple[list[socket.socket], int | None]:
    """Connect to ``target`` until connect() fails with EADDRNOTAVAIL; (the connections, that errno or None).

    None: ``limit`` connections succeeded (or the deadline passed) and the destination was not
    exhausted. Any other error closes the connections and is raised.
    """
    conns: list[socket.socket] = []
    try:
        for _ in range(limit):
            left = deadline - clock()
            if left <= 0:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(min(CONNECT_TIMEOUT, left))
            try:
                sock.connect(target)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRNOTAVAIL:
                    return conns, exc.errno
                raise
            conns.append(sock)
        return conns, None
    except BaseException:
        for sock in conns:
            sock.close()
        raise


# The agent's side -----------------------------------------------------------------------------------

def _used_ports(proc_root: Path) -> set[int]:
    from lab.inlab import tcptable

    try:
        text = (proc_root / "net" / "tcp").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    return {r.local[1] for r in tcptable.parse(text)}


class Exhaustion:
    """What the agent holds while a destination is exhausted: its holder processes and connections."""

    def __init__(self, proc_root: Path = Path("/proc"), *, chunk: int = CHUNK,
                 holder: Callable[[Sequence[int], float], Holder] = Holder,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.proc_root = proc_root
        self.chunk = chunk
        self.holder = holder
        self.clock = clock
        self.holders: list[Holder] = []
        self.conns: list[socket.socket] = []
        self.target: tuple[str, int] | None = None

    @property
    def active(self) -> bool:
        return bool(self.holders or self.conns)

    def start(self, target: tuple[str, int], spare: int, deadline_s: float,
              port_range: tuple[int, int] | None = None) -> dict[str, Any]:
        if self.active:
            raise PortsError(f"exhaust_ports: the ports are already exhausted for {self.target}; release first")
        started = self.clock()
        deadline = started + deadline_s
        low, high = port_range or read_range(self.proc_root)
        try:
            planned = plan(low, high, spare, _used_ports(self.proc_root))
        except ValueError as exc:
            raise PortsError(f"exhaust_ports: {exc}") from exc
        self.target = target
        try:
            self.holders = [self.holder(part, deadline_s) for part in chunks(planned.claim, self.chunk)]
            results = [h.wait_claim(deadline + 2.0 - self.clock()) for h in self.holders]
            failed = [f"holder {h.pid}: {r['error']}" for h, r in zip(self.holders, results) if "error" in r]
            if failed:
                raise PortsError("exhaust_ports: " + "; ".join(failed))
            claimed = sum(int(r.get("claimed", 0)) for r in results)
            unclaimed: dict[str, str] = {}
            by_address: dict[str, int] = {}
            for r in results:
                unclaimed.update(r.get("unclaimed", {}))
                for address, n in r.get("by_address", {}).items():
                    by_address[address] = by_address.get(address, 0) + int(n)
            if any(r.get("timed_out") for r in results):
                raise PortsError(f"exhaust_ports: claiming {len(planned.claim)} ports took longer than "
                                 f"{deadline_s:g} s ({claimed} claimed)")
            claimed_at = self.clock()
            limit = len(planned.spare) + len(unclaimed) + EXTRA_CONNECTS
            self.conns, code = connect_all(target, limit, deadline, clock=self.clock)
        except BaseException:
            self.release()
            raise
        if code != errno.EADDRNOTAVAIL:
            made = len(self.conns)
            self.release()
            raise PortsError(f"exhaust_ports: {made} connections to {target[0]}:{target[1]} and connect() still "
                             f"succeeds: the destination is not exhausted")
        return {"range": [low, high], "size": planned.size, "claimed": claimed, "by_address": by_address,
                "unclaimed": len(unclaimed), "unclaimed_ports": dict(sorted(unclaimed.items())[:SHOWN]),
                "spare": list(planned.spare), "holders": [h.pid for h in self.holders],
                "connections": [list(c.getsockname()) for c in self.conns], "target": list(target),
                "then": errno.errorcode[code], "claim_s": round(claimed_at - started, 3),
                "elapsed_s": round(self.clock() - started, 3)}

    def release(self, timeout: float = RELEASE_WAIT) -> dict[str, Any]:
        """Close every connection and every claimed port; bounded by ``timeout`` per holder. Idempotent."""
        started = self.clock()
        conns = 0
        while self.conns:
            try:
                self.conns.pop().close()
                conns += 1
            except OSError:
                pass
        listeners = 0
        holders, self.holders = self.holders, []
        for h in holders:
            listeners += h.release(timeout)
        self.target = None
        return {"listeners": listeners, "connections": conns, "holders": len(holders),
                "elapsed_s": round(self.clock() - started, 3)}


if __name__ == "__main__":
    sys.exit(holder_main())
