"""The fault injector that lives beside a lab container, inside its network namespace.

Compose starts one agent per lab host (``server-agent``, ``client-agent``)
with ``network_mode: service:<host>``: it sees that host's interfaces, routes
and firewall, and (beside the server, with ``pid: service:server``) its
processes. It holds only the capabilities its job needs (NET_ADMIN for
iptables and ``ip route``, NET_RAW and SETGID for tcpdump, KILL beside the
server) and runs as root because those tools need uid 0 with the capability.

At start it removes the namespace's default routes (:func:`isolate`), so the
host reaches the other lab containers and nothing else. Then it serves a
small control API on TCP port 9009 of that namespace, so a scenario running
in the client container needs no Docker socket: the server-agent answers at
``server:9009``, the client-agent at ``127.0.0.1:9009`` inside the client.

Protocol: one JSON object per line, one JSON reply per line::

    {"op": "block", "port": 7000, "direction": "in"}  -> {"ok": true, "ids": ["r1"], ...}
    {"op": "nonsense"}                                -> {"ok": false, "error": "unknown op ...; known ops: ..."}

Ops (fields in brackets are optional):

    ping
    block          port | peer_port, [direction in|out|both], [syn_only], [action drop|reject-rst],
                   [probability 0<p<=1]                       iptables rules in chain LAB-FAULTS
                                                              (TCP/IPv4, never loopback traffic)
    unblock                                                   flush LAB-FAULTS (idempotent)
    counters                                                  packets/bytes per lab rule
    signal         target threaded|selectors|supervisor, signal KILL|STOP|CONT|TERM|USR1|USR2
    processes                                                 lab.server / lab.server.supervisor processes
    wait_process   target, state running|stopped|gone|new, [not_pid], [timeout <= 30 s]
    capture_start  name [a-z0-9-]{1,32}, [filter]             tcpdump on eth0 into /tmp/NAME.pcap
    capture_stop   name                                       -> the pcap, base64
    tcp_stats                                                 /proc/net/snmp Tcp + /proc/net/netstat TcpExt
    reset          unblock, CONT stopped servers, USR2 the supervisor, drop all captures

A capture stops itself after 120 s; its file then waits for ``capture_stop``
(or ``reset``) and still counts against the limit of four captures.

:class:`Agent` holds the logic and takes its command runner, ``/proc`` root,
``kill`` and clock as arguments, so unit tests run it without root, iptables
or tcpdump; :class:`ControlServer` serves it over :mod:`lab.server.jsonlines`;
:mod:`lab.inlab.agent.client` is the client. Run it as ``python3 -m lab.inlab.agent.service``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal as signals
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from lab.inlab.health import default_routes
from lab.server.jsonlines import JsonLinesServer

API_PORT = 9009
MAX_REQUEST = 64 * 1024          # bytes in one request line; requests are tiny
IDLE_TIMEOUT = 30.0              # a connection that sends nothing for this long is closed
SEND_TIMEOUT = 30.0              # a client that never reads its reply does not pin a thread
MAX_CONNECTIONS = 16
COMMAND_TIMEOUT = 10.0           # every iptables run
CHAIN = "LAB-FAULTS"
HOOKS = ("INPUT", "OUTPUT")
COMMENT_PREFIX = "socket-lab:"
LOOPBACK = "127.0.0.0/8"
INTERFACE = "eth0"
MAX_CAPTURES = 4
CAPTURE_LIMIT = 120.0            # a forgotten capture stops itself after this long
CAPTURE_READY_TIMEOUT = 5.0      # tcpdump prints "listening on" well within this
CAPTURE_STOP_TIMEOUT = 5.0
CAPTURE_QUIET = 0.15             # capture_stop waits for the file to stop growing this long...
CAPTURE_SETTLE_LIMIT = 1.0       # ...but no longer than this on a busy link
MAX_PCAP_BYTES = 32 * 1024 * 1024
MAX_WAIT = 30.0
WAIT_POLL = 0.05
SIGNALS = {"KILL": signals.SIGKILL, "STOP": signals.SIGSTOP, "CONT": signals.SIGCONT,
           "TERM": signals.SIGTERM, "USR1": signals.SIGUSR1, "USR2": signals.SIGUSR2}
TARGETS = ("threaded", "selectors", "supervisor")
WAIT_STATES = ("running", "stopped", "gone", "new")
DIRECTIONS = ("in", "out", "both")
ACTIONS = {"drop": ["DROP"], "reject-rst": ["REJECT", "--reject-with", "tcp-reset"]}
_NAME_RE = re.compile(r"[a-z0-9-]{1,32}")


def _emit(event: str, **facts: object) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic(), 3), **facts}), flush=True)


def isolate() -> list[str]:
    """Delete every default route in this namespace; returns what was removed."""
    removed = []
    for family in ("-4", "-6"):
        while True:
            res = subprocess.run(["ip", family, "route", "del", "default"], capture_output=True, text=True,
                                 timeout=10)
            if res.returncode != 0:
                break
            removed.append(f"ip {family} default")
    left = default_routes()
    if left:
        raise SystemExit(f"agent: could not remove default routes {left}; it needs CAP_NET_ADMIN")
    return removed


# Commands ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Process(Protocol):
    """The part of :class:`subprocess.Popen` a capture uses (fakes implement just this)."""

    pid: int
    stderr: IO[bytes] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class Runner(Protocol):
    """What the agent needs from a command runner; unit tests pass a fake that starts nothing."""

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> Completed: ...
    def spawn(self, argv: Sequence[str]) -> Process: ...
    def forget(self, pid: int) -> None: ...


class CommandRunner:
    """Runs iptables (to completion, with a deadline) and tcpdump (in the background).

    It also knows every child it started, so that :meth:`reap_orphans` (needed
    when the agent is PID 1 of its namespace) never steals the exit status of a
    command that :meth:`run` is still waiting for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._own: set[int] = set()

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> Completed:
        with self._lock:
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
            except FileNotFoundError:
                return Completed(127, "", f"{argv[0]}: command not found")
            self._own.add(proc.pid)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return Completed(124, "", f"{' '.join(argv)}: no answer within {timeout:g} s")
        finally:
            self.forget(proc.pid)
        return Completed(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def spawn(self, argv: Sequence[str]) -> Process:
        """Start a long-running command; its stderr is a pipe the caller must drain."""
        with self._lock:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            self._own.add(proc.pid)
        return proc

    def forget(self, pid: int) -> None:
        with self._lock:
            self._own.discard(pid)

    def reap_orphans(self, proc_root: Path = Path("/proc")) -> list[int]:
        """Reap zombie children this runner did not start (orphans adopted by PID 1)."""
        reaped = []
        me = os.getpid()
        with self._lock:
            for info in read_processes(proc_root, with_cmdline=False):
                if info.state == "Z" and info.ppid == me and info.pid not in self._own:
                    try:
                        if os.waitpid(info.pid, os.WNOHANG)[0]:
                            reaped.append(info.pid)
                    except ChildProcessError:
                        pass
        return reaped


# Requests ---------------------------------------------------------------------------------------

class BadRequest(Exception):
    """The request is wrong; the message names the field, the value and what is accepted."""


class OpFailed(Exception):
    """The request was fine but the namespace would not do it (iptables error, no such process...)."""


_MISSING: Any = object()


class Args:
    """Typed, validated access to one request's fields; unknown fields are refused up front."""

    def __init__(self, op: str, request: dict[str, Any], accepted: Sequence[str]) -> None:
        self.op = op
        self._request = request
        unknown = sorted(k for k in request if k != "op" and k not in accepted)
        if unknown:
            fields = ", ".join(accepted) if accepted else "none"
            raise BadRequest(f"{op}: unknown field(s) {', '.join(map(repr, unknown))}; accepted fields: {fields}")

    def has(self, name: str) -> bool:
        return self._request.get(name) is not None

    def _get(self, name: str, default: Any) -> Any:
        value = self._request.get(name)
        if value is None:
            if default is _MISSING:
                raise BadRequest(f'{self.op}: field "{name}" is required')
            return default
        return value

    def integer(self, name: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if type(value) is not int or not lo <= value <= hi:
            raise BadRequest(f'{self.op}: field "{name}" must be an integer from {lo} to {hi}; got {value!r}')
        return value

    def number(self, name: str, lo: float, hi: float, default: Any = _MISSING, *, lo_open: bool = True) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        ok_type = type(value) in (int, float)
        low_ok = ok_type and (value > lo if lo_open else value >= lo)
        if not (ok_type and low_ok and value <= hi):
            bound = f"{lo:g} < x <= {hi:g}" if lo_open else f"{lo:g} <= x <= {hi:g}"
            raise BadRequest(f'{self.op}: field "{name}" must be a number with {bound}; got {value!r}')
        return float(value)

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if type(value) is not bool:
            raise BadRequest(f'{self.op}: field "{name}" must be true or false; got {value!r}')
        return value

    def choice(self, name: str, choices: Iterable[str], default: Any = _MISSING) -> Any:
        choices = list(choices)
        value = self._get(name, default)
        if value not in choices:
            accepted = ", ".join(f'"{c}"' for c in choices)
            raise BadRequest(f'{self.op}: field "{name}" must be one of {accepted}; got {value!r}')
        return value

    def string(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise BadRequest(f'{self.op}: field "{name}" must be a string; got {value!r}')
        return value


# Packet faults: iptables -------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One iptables rule of a block request, and what it was meant to do."""

    id: str
    hook: str                 # the built-in chain whose packets it is meant for: INPUT or OUTPUT
    match: tuple[str, ...]    # e.g. ("--dport", "7000")
    action: str
    syn_only: bool
    probability: float | None

    def args(self, verb: str = "-A") -> list[str]:
        """iptables arguments that append (-A) or delete (-D) this rule in LAB-FAULTS."""
        # Never loopback: a host's own 127.0.0.1 traffic (its healthcheck, the client-agent's API)
        # would cross LAB-FAULTS from OUTPUT too, be dropped, and inflate the counters a
        # scenario relies on as proof. Faults are for the lab network between containers.
        argv = [verb, CHAIN, "!", "-d", LOOPBACK, "-p", "tcp", *self.match]
        if self.syn_only:
            argv.append("--syn")
        if self.probability is not None:
            argv += ["-m", "statistic", "--mode", "random", "--probability", repr(self.probability)]
        argv += ["-m", "comment", "--comment", f"{COMMENT_PREFIX}{self.id}", "-j", *ACTIONS[self.action]]
        return argv

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "hook": self.hook, "match": " ".join(self.match), "action": self.action,
                "syn_only": self.syn_only, "probability": self.probability}


PlannedRule = tuple[str, tuple[str, ...]]  # (hook, port match)


def plan_rules(port: int | None, peer_port: int | None, direction: str, syn_only: bool) -> list[PlannedRule]:
    """(hook, port match) pairs for one block request.

    ``port`` is this namespace's own port (a server's listening port): packets
    in are ``--dport`` in INPUT, packets out are ``--sport`` in OUTPUT.
    ``peer_port`` is the remote side's port (a client blocking its server):
    the other way round. A SYN always travels *to* the listening port, so
    ``syn_only`` keeps only the direction that carries it.

    The hook is what a rule is *meant* for: LAB-FAULTS is one chain jumped to
    from both INPUT and OUTPUT, so a ``--dport 7000`` rule would also match an
    outgoing packet to some other host's port 7000. In the lab that packet
    never exists (servers do not dial out to lab ports, clients never use them
    as local ports: ephemeral ports start at 32768), so the direction is exact
    in practice and the chain stays one simple list to count and flush.
    """
    if (port is None) == (peer_port is None):
        raise BadRequest('block: give exactly one of "port" (this side\'s port, e.g. a server\'s listening port) '
                         'or "peer_port" (the remote side\'s port, e.g. the server port a client talks to)')
    if port is not None:
        rules = {"in": ("INPUT", ("--dport", str(port))), "out": ("OUTPUT", ("--sport", str(port)))}
        syn_direction, field_name = "in", "port"
    else:
        rules = {"in": ("INPUT", ("--sport", str(peer_port))), "out": ("OUTPUT", ("--dport", str(peer_port)))}
        syn_direction, field_name = "out", "peer_port"
    if syn_only:
        if direction not in (syn_direction, "both"):
            raise BadRequest(f'block: syn_only matches connection SYNs, which travel to the listening port: with '
                             f'"{field_name}" use direction "{syn_direction}" or "both"; got "{direction}"')
        return [rules[syn_direction]]
    return [rules[d] for d in (("in", "out") if direction == "both" else (direction,))]


_COUNTER_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\S+)\s.*/\*\s*" + re.escape(COMMENT_PREFIX) + r"([\w-]+)\s*\*/")


def parse_counters(listing: str) -> list[dict[str, Any]]:
    """Packets and bytes of each lab rule in ``iptables -L LAB-FAULTS -v -x -n`` output."""
    found = []
    for line in listing.splitlines():
        m = _COUNTER_RE.match(line)
        if m:
            found.append({"id": m.group(4), "packets": int(m.group(1)), "bytes": int(m.group(2)),
                          "target": m.group(3)})
    return found


# Process faults: /proc -------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    argv: tuple[str, ...] = ()

    @property
    def module(self) -> str | None:
        """The module a ``python -m MODULE`` process runs, if that is what it is."""
        if "-m" in self.argv:
            i = self.argv.index("-m")
            return self.argv[i + 1] if i + 1 < len(self.argv) else None
        return None

    @property
    def role(self) -> str | None:
        module = self.module
        if module == "lab.server.supervisor" and self.pid == 1:
            return "supervisor"
        if module == "lab.server":
            return _impl(self.argv)
        return None

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state, "role": self.role, "cmdline": " ".join(self.argv)}


def _impl(argv: Sequence[str]) -> str:
    for i, token in enumerate(argv):
        if token.startswith("--impl="):
            return token.split("=", 1)[1]
        if token == "--impl" and i + 1 < len(argv):
            return argv[i + 1]
    return "threaded"  # lab.server's own default


def read_processes(proc_root: Path, *, with_cmdline: bool = True) -> list[ProcInfo]:
    """Every process visible in ``proc_root``; ones that vanish while being read are skipped."""
    found = []
    try:
        entries = list(proc_root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv: tuple[str, ...] = ()
            if with_cmdline:
                raw = (entry / "cmdline").read_bytes()
                argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        except OSError:
            continue
        # The command name in parentheses may itself hold spaces or ')': split after the last ')'.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 2:
            continue
        found.append(ProcInfo(int(entry.name), int(rest[1]), rest[0], argv))
    return sorted(found, key=lambda p: p.pid)


def lab_processes(proc_root: Path) -> list[ProcInfo]:
    return [p for p in read_processes(proc_root) if p.module in ("lab.server", "lab.server.supervisor")]


# Counters: /proc/net -----------------------------------------------------------------------------

def parse_snmp(text: str, prefix: str) -> dict[str, int]:
    """The ``prefix:`` header/value line pair of /proc/net/snmp or /proc/net/netstat."""
    lines = [line.split() for line in text.splitlines() if line.startswith(prefix + ":")]
    stats: dict[str, int] = {}
    for names, values in zip(lines[0::2], lines[1::2]):
        for name, value in zip(names[1:], values[1:]):
            stats[name] = int(value)
    return stats


# Captures: tcpdump -----------------------------------------------------------------------------

_PORT_RE = re.compile(r"[0-9]{1,5}")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_FILTER_WORDS = {"tcp", "port", "host", "and", "or", "not", "src", "dst"}
FILTER_GRAMMAR = ("PRIMARY [(and|or) PRIMARY ...], where PRIMARY is [not] tcp | [not] [src|dst] port N (1-65535) "
                  "| [not] [src|dst] host NAME-or-IPv4 (NAME: lowercase letters, digits, '-', '.')")
MAX_FILTER = 256


def parse_filter(text: str) -> list[str]:
    """Check a capture filter against the small grammar tcpdump is allowed to see; returns its tokens.

    The tokens go to tcpdump as separate argv entries (never through a
    shell), and the grammar admits no token starting with '-', so nothing in
    a filter can become a tcpdump option such as ``-w /etc/x`` or ``-z``.
    """
    if not isinstance(text, str) or len(text) > MAX_FILTER:
        raise BadRequest(f'capture_start: field "filter" must be a string of at most {MAX_FILTER} characters')
    tokens = text.split()
    if not tokens:
        raise BadRequest(f'capture_start: field "filter" is empty; accepted grammar: {FILTER_GRAMMAR}')
    i = 0

    def fail(why: str) -> BadRequest:
        return BadRequest(f'capture_start: field "filter": {why} in {text!r}; accepted grammar: {FILTER_GRAMMAR}')

    def take(position: int) -> str:
        if position >= len(tokens):
            raise fail("the filter ends early")
        return tokens[position]

    while True:
        if take(i) == "not":
            i += 1
        tok = take(i)
        if tok == "tcp":
            i += 1
        else:
            if tok in ("src", "dst"):
                i += 1
                tok = take(i)
            if tok == "port":
                value = take(i + 1)
                if not _PORT_RE.fullmatch(value) or not 1 <= int(value) <= 65535:
                    raise fail(f"port must be a number from 1 to 65535, not {value!r}")
            elif tok == "host":
                value = take(i + 1)
                # Digits and dots only is an address attempt: it must be a valid IPv4, not a "host name".
                looks_numeric = re.fullmatch(r"[0-9.]+", value) is not None
                valid = _IPV4_RE.fullmatch(value) if looks_numeric else _HOSTNAME_RE.fullmatch(value)
                if value in _FILTER_WORDS or not valid:
                    raise fail(f"host must be an IPv4 address or a lowercase host name, not {value!r}")
            else:
                raise fail(f"unexpected {tok!r} at token {i + 1}")
            i += 2
        if i == len(tokens):
            return tokens
        if tokens[i] not in ("and", "or"):
            raise fail(f"expected 'and' or 'or' at token {i + 1}, got {tokens[i]!r}")
        i += 1


@dataclass
class Capture:
    name: str
    path: Path
    tokens: list[str]
    proc: Process | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))  # tcpdump says little; bound it anyway
    ready: threading.Event = field(default_factory=threading.Event)
    auto_stopped: bool = False
    timer: threading.Timer | None = None
    reader: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read_stderr(self) -> None:
        """Drain tcpdump's stderr (so it never blocks on a full pipe) and notice 'listening on'."""
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if "listening on" in line:
                self.ready.set()

    def settle(self, quiet: float, limit: float = CAPTURE_SETTLE_LIMIT) -> None:
        """Wait until the pcap file has not grown for ``quiet`` seconds (at most ``limit``).

        tcpdump exits on SIGINT without writing packets it has received but not yet
        handled; a capture stopped right after its connection lost everything after
        the SYN (measured). With -U each handled packet is written at once, so a file
        that stopped growing means tcpdump has caught up.
        """
        deadline = time.monotonic() + limit
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != last:
                last, still_since = size, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
            time.sleep(min(quiet / 2, 0.05))

    def stop(self, grace: float = CAPTURE_STOP_TIMEOUT, quiet: float = 0.0) -> None:
        """Settle (see :meth:`settle`), SIGINT (tcpdump exits), SIGKILL after ``grace``; idempotent."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                if quiet > 0:
                    self.settle(quiet)
                proc.send_signal(signals.SIGINT)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=grace)
            if self.reader is not None:
                self.reader.join(timeout=1.0)  # picks up tcpdump's "N packets captured" lines

    def summary(self) -> list[str]:
        return [line for line in self.lines if "packets" in line]


# The agent -------------------------------------------------------------------------------------

OPS: dict[str, tuple[str, ...]] = {
    "ping": (),
    "block": ("port", "peer_port", "direction", "syn_only", "action", "probability"),
    "unblock": (),
    "counters": (),
    "signal": ("target", "signal"),
    "processes": (),
    "wait_process": ("target", "state", "not_pid", "timeout"),
    "capture_start": ("name", "filter"),
    "capture_stop": ("name",),
    "tcp_stats": (),
    "reset": (),
}


class Agent:
    """The ops, on an injectable command runner, /proc tree, kill function and clock."""

    def __init__(self, runner: Runner | None = None, *, proc_root: Path = Path("/proc"),
                 capture_dir: Path = Path("/tmp"), kill: Callable[[int, int], None] = os.kill,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 interface: str = INTERFACE, api_port: int = API_PORT, capture_limit: float = CAPTURE_LIMIT,
                 capture_ready_timeout: float = CAPTURE_READY_TIMEOUT,
                 capture_quiet: float = CAPTURE_QUIET) -> None:
        self.runner = runner or CommandRunner()
        self.proc_root = proc_root
        self.capture_dir = capture_dir
        self.kill = kill
        self.clock = clock
        self.sleep = sleep
        self.interface = interface
        self.api_port = api_port
        self.capture_limit = capture_limit
        self.capture_ready_timeout = capture_ready_timeout
        self.capture_quiet = capture_quiet
        self._iptables_lock = threading.Lock()
        self._rules: dict[str, Rule] = {}
        self._next_rule = 1
        self._captures: dict[str, Capture] = {}
        self._captures_lock = threading.Lock()

    # Dispatch ------------------------------------------------------------------
    def handle(self, request: Any) -> dict[str, Any]:
        """Run one decoded request; never raises, always returns a reply object."""
        known = ", ".join(OPS)
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": f'a request is a JSON object with an "op" string; known ops: {known}'}
        op = request["op"]
        if op not in OPS:
            return {"ok": False, "error": f"unknown op {op!r}; known ops: {known}"}
        try:
            result = getattr(self, f"op_{op}")(Args(op, request, OPS[op]))
        except (BadRequest, OpFailed) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug must cost one reply, not the agent
            _emit("internal-error", op=op, error=repr(exc))
            return {"ok": False, "error": f"{op}: internal error {type(exc).__name__}: {exc}"}
        return {"ok": True, **result}

    def op_ping(self, _args: Args) -> dict[str, Any]:
        return {"pid": os.getpid(), "ops": list(OPS)}

    # iptables ------------------------------------------------------------------
    def _iptables(self, *args: str, check: bool = True) -> Completed:
        res = self.runner.run(["iptables", "-w", "5", *args], timeout=COMMAND_TIMEOUT)
        if check and res.returncode != 0:
            raise OpFailed(f"iptables {' '.join(args)} failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
        return res

    def ensure_chain(self) -> None:
        """Create LAB-FAULTS and hook it first in INPUT and OUTPUT, unless already done."""
        res = self._iptables("-N", CHAIN, check=False)
        if res.returncode != 0 and "exists" not in res.stderr:
            raise OpFailed(f"iptables -N {CHAIN} failed (exit {res.returncode}): {res.stderr.strip()} "
                           "(the agent needs root and CAP_NET_ADMIN)")
        for hook in HOOKS:
            if self._iptables("-C", hook, "-j", CHAIN, check=False).returncode != 0:
                self._iptables("-I", hook, "1", "-j", CHAIN)

    def op_block(self, args: Args) -> dict[str, Any]:
        port = args.integer("port", 1, 65535, None)
        peer_port = args.integer("peer_port", 1, 65535, None)
        direction = args.choice("direction", DIRECTIONS, "both")
        syn_only = args.boolean("syn_only", False)
        action = args.choice("action", ACTIONS, "drop")
        probability = args.number("probability", 0.0, 1.0, None)
        if self.api_port in (port, peer_port):
            raise BadRequest(f"block: port {self.api_port} is the agent's own control port; blocking it would "
                             "cut the scenario off from the agent")
        planned = plan_rules(port, peer_port, direction, syn_only)
        with self._iptables_lock:
            self.ensure_chain()
            added: list[Rule] = []
            try:
                for hook, match in planned:
                    rule = Rule(f"r{self._next_rule}", hook, match, action, syn_only, probability)
                    self._next_rule += 1
                    self._iptables(*rule.args())
                    added.append(rule)
            except OpFailed:
                for rule in added:  # all or nothing: a half-applied block would mislead the scenario
                    self._iptables(*rule.args("-D"), check=False)
                raise
            self._rules.update((r.id, r) for r in added)
        return {"ids": [r.id for r in added], "rules": [r.describe() for r in added]}

    def op_unblock(self, _args: Args | None = None) -> dict[str, Any]:
        with self._iptables_lock:
            self.ensure_chain()
            self._iptables("-F", CHAIN)
            removed = sorted(self._rules)
            self._rules.clear()
        return {"removed": removed}

    def op_counters(self, _args: Args) -> dict[str, Any]:
        with self._iptables_lock:
            self.ensure_chain()
            listing = self._iptables("-L", CHAIN, "-v", "-x", "-n").stdout
        rules = parse_counters(listing)
        for entry in rules:
            known = self._rules.get(entry["id"])
            if known is not None:
                entry.update({k: v for k, v in known.describe().items() if k != "id"})
        return {"rules": rules}

    # Processes -----------------------------------------------------------------
    def _find(self, target: str) -> list[ProcInfo]:
        return [p for p in lab_processes(self.proc_root) if p.role == target and p.alive]

    def op_signal(self, args: Args) -> dict[str, Any]:
        target = args.choice("target", TARGETS)
        name = args.choice("signal", SIGNALS)
        if target == "supervisor" and name in ("KILL", "STOP"):
            # The kernel drops these when they are sent to PID 1 from inside its own pid namespace.
            raise BadRequest(f'signal: the supervisor is PID 1 of its pid namespace and the kernel ignores "{name}" '
                             'sent to it from inside; accepted for "supervisor": "TERM", "USR1", "USR2", "CONT"')
        found = self._find(target)
        if not found:
            raise OpFailed(f"signal: no {target} process in this agent's pid namespace; "
                           f"lab processes seen: {self._seen()}")
        pids = []
        for proc in found:
            try:
                self.kill(proc.pid, SIGNALS[name])
            except ProcessLookupError:
                continue  # it exited between the /proc scan and the kill
            except PermissionError as exc:
                raise OpFailed(f"signal: SIG{name} to pid {proc.pid} refused ({exc}); "
                               "the agent needs root with CAP_KILL") from exc
            pids.append(proc.pid)
        return {"pids": pids, "signal": name}

    def _seen(self) -> str:
        procs = lab_processes(self.proc_root)
        return ", ".join(f"{p.pid} {p.role or p.module} ({p.state})" for p in procs) or "none"

    def op_processes(self, _args: Args) -> dict[str, Any]:
        return {"processes": [p.describe() for p in lab_processes(self.proc_root)]}

    def op_wait_process(self, args: Args) -> dict[str, Any]:
        target = args.choice("target", TARGETS)
        state = args.choice("state", WAIT_STATES)
        timeout = args.number("timeout", 0.0, MAX_WAIT, 10.0)
        not_pid = args.integer("not_pid", 1, 2**22, None)
        if (state == "new") != (not_pid is not None):
            raise BadRequest('wait_process: field "not_pid" (the pid the old process had) is required with '
                             'state "new" and accepted only with it')
        start = self.clock()
        while True:
            procs = self._find(target)
            match = _holds(procs, state, not_pid)
            if match is not None:
                return {"pid": match.pid if match.pid else None, "state": match.state or None,
                        "waited": round(self.clock() - start, 3)}
            if self.clock() - start >= timeout:
                raise OpFailed(f"wait_process: {target} not {state} within {timeout:g} s; "
                               f"lab processes seen: {self._seen()}")
            self.sleep(WAIT_POLL)

    # Captures ------------------------------------------------------------------
    def op_capture_start(self, args: Args) -> dict[str, Any]:
        name = args.string("name")
        if not _NAME_RE.fullmatch(name):
            raise BadRequest(f'capture_start: field "name" must match [a-z0-9-]{{1,32}}; got {name!r}')
        tokens = parse_filter(args.string("filter", "tcp"))
        capture = Capture(name, self.capture_dir / f"{name}.pcap", tokens)
        with self._captures_lock:
            if name in self._captures:
                raise BadRequest(f'capture_start: a capture named "{name}" exists; stop it or pick another name')
            if len(self._captures) >= MAX_CAPTURES:
                raise OpFailed(f"capture_start: at most {MAX_CAPTURES} captures at once; running: "
                               f"{', '.join(sorted(self._captures))}")
            self._captures[name] = capture  # reserves the name while tcpdump starts
        try:
            self._start_tcpdump(capture)
        except BaseException:
            with self._captures_lock:
                self._captures.pop(name, None)
            capture.stop()
            if capture.proc is not None:
                self.runner.forget(capture.proc.pid)
            capture.path.unlink(missing_ok=True)
            raise
        return {"name": name, "filter": " ".join(tokens), "pid": capture.proc.pid if capture.proc else None}

    def tcpdump_argv(self, capture: Capture) -> list[str]:
        # -U writes each packet as it comes and --immediate-mode hands it over at once: without it
        # libpcap's TPACKET_V3 ring holds packets up to a second and SIGINT discards them.
        # -Z root keeps root (no SETUID needed), but tcpdump still calls initgroups(): CAP_SETGID.
        return ["tcpdump", "-U", "--immediate-mode", "-i", self.interface, "-w", str(capture.path), "-Z", "root",
                *capture.tokens]

    def _start_tcpdump(self, capture: Capture) -> None:
        capture.path.unlink(missing_ok=True)
        try:
            capture.proc = self.runner.spawn(self.tcpdump_argv(capture))
        except FileNotFoundError as exc:
            raise OpFailed("capture_start: tcpdump is not installed in this image") from exc
        capture.reader = threading.Thread(target=capture.read_stderr, daemon=True, name=f"tcpdump-{capture.name}")
        capture.reader.start()
        deadline = self.clock() + self.capture_ready_timeout
        while not capture.ready.wait(0.02):
            if capture.proc.poll() is not None:
                capture.reader.join(timeout=1.0)
                raise OpFailed(f"capture_start: tcpdump exited with {capture.proc.poll()} before listening: "
                               f"{' | '.join(capture.lines) or 'no output'}")
            if self.clock() >= deadline:
                raise OpFailed(f"capture_start: tcpdump did not report 'listening on' within "
                               f"{self.capture_ready_timeout:g} s: {' | '.join(capture.lines) or 'no output'}")
        capture.timer = threading.Timer(self.capture_limit, self._auto_stop, args=(capture,))
        capture.timer.daemon = True
        capture.timer.start()

    def _auto_stop(self, capture: Capture) -> None:
        capture.auto_stopped = True
        capture.stop(quiet=self.capture_quiet)
        _emit("capture-auto-stopped", name=capture.name, after_s=self.capture_limit)

    def op_capture_stop(self, args: Args) -> dict[str, Any]:
        name = args.string("name")
        with self._captures_lock:
            capture = self._captures.pop(name, None)
            running = ", ".join(sorted(self._captures)) or "none"
        if capture is None:
            raise BadRequest(f'capture_stop: no capture named {name!r}; captures: {running}')
        try:
            capture.stop(quiet=self.capture_quiet)
            if capture.proc is not None:
                self.runner.forget(capture.proc.pid)
            size = capture.path.stat().st_size
            if size > MAX_PCAP_BYTES:
                raise OpFailed(f"capture_stop: {name}.pcap is {size} bytes, more than {MAX_PCAP_BYTES}; "
                               "narrow the filter or stop sooner")
            data = capture.path.read_bytes()
        except FileNotFoundError as exc:
            raise OpFailed(f"capture_stop: tcpdump wrote no file for {name!r}: {' | '.join(capture.lines)}") from exc
        finally:
            capture.path.unlink(missing_ok=True)
        return {"name": name, "size": len(data), "pcap": base64.b64encode(data).decode("ascii"),
                "auto_stopped": capture.auto_stopped, "tcpdump": capture.summary()}

    def stop_captures(self) -> list[str]:
        with self._captures_lock:
            captures = list(self._captures.values())
            self._captures.clear()
        for capture in captures:
            capture.stop()
            if capture.proc is not None:
                self.runner.forget(capture.proc.pid)
            capture.path.unlink(missing_ok=True)
        return sorted(c.name for c in captures)

    # Counters and reset ----------------------------------------------------------
    def op_tcp_stats(self, _args: Args) -> dict[str, Any]:
        net = self.proc_root / "net"
        try:
            snmp = (net / "snmp").read_text()
            netstat = (net / "netstat").read_text()
        except OSError as exc:
            raise OpFailed(f"tcp_stats: cannot read {exc.filename}: {exc.strerror}") from exc
        return {"tcp": parse_snmp(snmp, "Tcp"), "tcp_ext": parse_snmp(netstat, "TcpExt")}

    def op_reset(self, _args: Args | None = None) -> dict[str, Any]:
        """Undo every fault; each step runs even if an earlier one failed, and failures are reported."""
        errors: list[str] = []
        result: dict[str, Any] = {"removed": [], "continued": [], "released": None, "captures_stopped": []}
        try:
            result["removed"] = self.op_unblock()["removed"]
        except OpFailed as exc:
            errors.append(str(exc))
        for proc in lab_processes(self.proc_root):
            try:
                if proc.role in ("threaded", "selectors") and proc.stopped:
                    self.kill(proc.pid, signals.SIGCONT)
                    result["continued"].append(proc.pid)
                elif proc.role == "supervisor":
                    self.kill(proc.pid, signals.SIGUSR2)  # undoes a USR1 hold; harmless otherwise
                    result["released"] = proc.pid
            except ProcessLookupError:
                continue
            except PermissionError as exc:
                errors.append(f"reset: cannot signal pid {proc.pid}: {exc}")
        result["captures_stopped"] = self.stop_captures()
        if errors:
            raise OpFailed("; ".join(errors))
        return result


def _holds(procs: list[ProcInfo], state: str, not_pid: int | None) -> ProcInfo | None:
    """The process that makes ``state`` true, ProcInfo(0, 0, "") for "gone", or None if it does not hold."""
    if state == "gone":
        return ProcInfo(0, 0, "") if not procs else None
    for proc in procs:
        if state == "stopped" and proc.stopped:
            return proc
        if state == "running" and not proc.stopped:
            return proc
        if state == "new" and not proc.stopped and proc.pid != not_pid:
            return proc
    return None


# The control server ----------------------------------------------------------------------------

class ControlServer(JsonLinesServer):
    """The agent's API: :mod:`lab.server.jsonlines` framing and bounds, :meth:`Agent.handle` for each request::

        with ControlServer(Agent(), "127.0.0.1", 0) as srv:   # port 0: pick a free one
            print(srv.port)
    """

    name = "agent-api"

    def __init__(self, agent: Agent, host: str = "0.0.0.0", port: int = API_PORT, *,
                 idle_timeout: float = IDLE_TIMEOUT, max_request: int = MAX_REQUEST,
                 max_connections: int = MAX_CONNECTIONS, poll: float = 0.2) -> None:
        self.agent = agent
        super().__init__(host, port, poll=poll, idle_timeout=idle_timeout, max_line=max_request,
                         reply_timeout=SEND_TIMEOUT, max_connections=max_connections)

    def handle(self, request: Any) -> dict[str, Any]:
        reply = self.agent.handle(request)
        op = request.get("op") if isinstance(request, dict) else None
        _emit("request", op=op, ok=reply["ok"], **({} if reply["ok"] else {"error": reply["error"]}))
        return reply

    def not_json(self, exc: ValueError) -> dict[str, Any]:
        return {"ok": False, "error": f"request is not valid JSON ({exc}); send one JSON object per line, "
                                      'e.g. {"op": "ping"}'}

    def busy(self) -> dict[str, Any]:
        return {"ok": False, "error": f"agent busy: {self.max_connections} connections open; retry shortly"}


# Entry point -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.inlab.agent.service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=API_PORT)
    opts = parser.parse_args(argv)
    removed = isolate()
    _emit("isolated", removed=removed)
    runner = CommandRunner()
    agent = Agent(runner)
    try:
        agent.op_unblock()  # a restarted agent starts from a clean chain
    except OpFailed as exc:
        _emit("iptables-unavailable", error=str(exc))
    stop = threading.Event()
    for sig in (signals.SIGTERM, signals.SIGINT):
        signals.signal(sig, lambda *_: stop.set())
    with ControlServer(agent, opts.host, opts.port) as server:
        _emit("listening", host=opts.host, port=server.port)
        while not stop.wait(0.5):
            if os.getpid() == 1:  # the client-agent is its namespace's init: adopt and reap orphans
                runner.reap_orphans()
        try:
            agent.op_reset()  # leave the namespace as we found it
        except OpFailed as exc:
            _emit("reset-failed", error=str(exc))
    _emit("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
