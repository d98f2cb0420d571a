"""The fault injector that lives beside a lab container, inside its network namespace.

Compose starts one agent per lab host (``server-agent``, ``client-agent``)
with ``network_mode: service:<host>``: it sees that host's interfaces, routes
and firewall, and (beside the server, with ``pid: service:server``) its
processes. It holds only the capabilities its job needs (NET_ADMIN for
iptables and ``ip route``, NET_RAW and SETGID for tcpdump, KILL beside the
server) and runs as root because those tools need uid 0 with the capability.

At start it removes the namespace's default routes
(:func:`lab.inlab.agent.commands.isolate`), so the host reaches the other lab
containers and nothing else. Then it serves a small control API on TCP port
9009 of that namespace (:data:`lab.addresses.AGENT_PORT`), so a scenario running
in the client container needs no Docker socket: the server-agent answers at
``server:9009``, the client-agent at ``127.0.0.1:9009`` inside the client.

Protocol: one JSON object per line, one JSON reply per line::

    {"op": "block", "port": 7000, "direction": "in"}  -> {"ok": true, "ids": ["r1"], ...}
    {"op": "nonsense"}                                -> {"ok": false, "error": "unknown op ...; known ops: ..."}

Ops (fields in brackets are optional):

    ping
    health         [listening [port, ...] (at most 16)]       what is wrong in this namespace: a default
                                                              route, or a port nothing listens on (read
                                                              from /proc/net/tcp, never connected to)
    block          port | peer_port, [direction in|out|both], [syn_only], [action drop|reject-rst|count],
                   [probability 0<p<=1]                       iptables rules in chain LAB-FAULTS
                                                              (TCP/IPv4, never loopback traffic)
    unblock                                                   flush LAB-FAULTS (idempotent)
    counters                                                  packets/bytes per lab rule
    signal         target threaded|selectors|forking|supervisor, signal KILL|STOP|CONT|TERM|USR1|USR2,
                   [peer_port]                                with peer_port: only the server's forked
                                                              child that holds the connection from that
                                                              remote port (the forking server's children)
    processes      [sockets]                                  lab.server / lab.server.supervisor processes
                                                              (with sockets: each one's TCP sockets)
    tcp_table      [port]                                     /proc/net/tcp rows (local or remote port)
    bind           port, binder reuseaddr|no-reuseaddr        bind 0.0.0.0:port here, as a restarting
                                                              server would (lab.server.binding), close it
    wait_process   target, state running|stopped|gone|new, [not_pid], [timeout <= 30 s]
    capture_start  name [a-z0-9-]{1,32}, [filter]             tcpdump on eth0 into /tmp/NAME.pcap
    capture_stop   name                                       -> the pcap, base64
    tcp_stats                                                 /proc/net/snmp Tcp + /proc/net/netstat TcpExt
    tcp_table      [port]                                     this namespace's /proc/net/tcp rows (IPv4), those
                                                              with local or remote ``port`` only if given
    exhaust_ports  target [ipv4, port], [spare 1..64 (4)],    claim every port of the ephemeral range but
                   [timeout <= 30 s (20)]                     ``spare``, then connect to ``target`` from those
                                                              until EADDRNOTAVAIL (:mod:`~lab.inlab.agent.ports`)
    release_ports                                             close all of it again (idempotent)
    reset          unblock, CONT stopped servers, USR2 the supervisor, drop all captures, release_ports
                   (and, in the client-agent, clear the sandbox's targets: its baseline stays)
    dns            action drop|reject|count, [address]       the resolver's queries (Docker's DNS,
                                                              127.0.0.11) dropped or answered with ICMP
                                                              port unreachable; count: three counters
                                                              (queries, answers, errors); in LAB-FAULTS
    sandbox_allow  targets [[ipv4, port], ...] (at most 16)   the only TCP targets graded code may
                                                              reach; replaces the last list, [] clears
                                                              (client-agent only: --sandbox-uid)

The client-agent (started with ``--sandbox-uid``) also guards the sandbox: before its API
listens it installs the LAB-SANDBOX chain (:mod:`~lab.inlab.agent.sandboxrules`), so the
uid that graded code runs as is never unrestricted in the client's namespace; the server-agent
has no sandbox beside it and installs nothing.

A capture stops itself after 120 s; its file then waits for ``capture_stop``
(or ``reset``) and still counts against the limit of four captures.

:class:`Agent` holds the logic and takes its command runner, ``/proc`` root,
``kill`` and clock as arguments, so unit tests run it without root, iptables
or tcpdump. Around it, in :mod:`lab.inlab.agent`: :mod:`~lab.inlab.agent.requests`
decodes a request's fields, :mod:`~lab.inlab.agent.commands` runs iptables and
tcpdump, :mod:`~lab.inlab.agent.iptables` plans rules and reads their counters,
:mod:`~lab.inlab.agent.sandboxrules` plans the sandbox's firewall,
:mod:`~lab.inlab.agent.procfs` reads processes and TCP counters from ``/proc``,
:mod:`~lab.inlab.agent.tcpdump` is one running capture;
:class:`~lab.inlab.agent.api.AgentApiServer` serves the agent over
:mod:`lab.server.jsonlines`, :mod:`lab.inlab.agent.client` is the client, and
``python3 -m lab.inlab.agent`` (:mod:`lab.inlab.agent.__main__`) runs it.
"""

from __future__ import annotations

import base64
import os
import re
import signal as signals
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.addresses import AGENT_PORT, DRIVER_PORT, SERVER_PORTS
from lab.inlab.agent import ports, router, sandboxrules
from lab.inlab.agent.commands import COMMAND_TIMEOUT, CommandRunner, Completed, RunsCommands
from lab.inlab.agent.iptables import ACTIONS, CHAIN, DIRECTIONS, DOCKER_DNS, ENDPOINT_HOOKS, FORWARD_HOOKS, DnsRule, \
    Rule, parse_counters, plan_dns, plan_rules
from lab.inlab.agent.log import emit
from lab.inlab import tcptable
from lab.inlab.agent.procfs import ProcInfo, describe_row, lab_processes, parse_snmp
from lab.inlab.agent.requests import Args, BadRequest, OpFailed
from lab.inlab.agent.routerops import ROUTER_OPS, RouterOps
from lab.inlab.agent.sandboxrules import Target
from lab.inlab.agent.tcpdump import TcpdumpCapture, parse_filter
from lab.inlab import tcptable

INTERFACE = "eth0"
MAX_CAPTURES = 4
CAPTURE_LIMIT = 120.0            # a forgotten capture stops itself after this long
SNAPLEN = 65600                  # bytes of each packet kept: all of the largest a veth carries
BUFFER_KIB = 131072              # tcpdump's -B: the kernel ring, in KiB (about 2000 frames of SNAPLEN)
CAPTURE_READY_TIMEOUT = 5.0      # tcpdump prints "listening on" well within this
CAPTURE_QUIET = 0.15             # capture_stop waits for the file to stop growing this long
MAX_PCAP_BYTES = 32 * 1024 * 1024
MAX_WAIT = 30.0
WAIT_POLL = 0.05
SIGNALS = {"KILL": signals.SIGKILL, "STOP": signals.SIGSTOP, "CONT": signals.SIGCONT,
           "TERM": signals.SIGTERM, "USR1": signals.SIGUSR1, "USR2": signals.SIGUSR2}
SERVER_TARGETS = tuple(SERVER_PORTS)
TARGETS = (*SERVER_TARGETS, "supervisor")
WAIT_STATES = ("running", "stopped", "gone", "new")
_NAME_RE = re.compile(r"[a-z0-9-]{1,32}")


# The agent -------------------------------------------------------------------------------------

OPS: dict[str, tuple[str, ...]] = {
    "ping": (),
    "health": ("listening",),
    "block": ("port", "peer_port", "direction", "syn_only", "action", "probability"),
    "unblock": (),
    "counters": (),
    "signal": ("target", "signal", "peer_port"),
    "processes": ("sockets",),
    "wait_process": ("target", "state", "not_pid", "timeout"),
    "capture_start": ("name", "filter", "side"),
    "capture_stop": ("name",),
    "tcp_stats": (),
    "reset": (),
    "sandbox_allow": ("targets",),
    "tcp_table": ("port",),
    "socket_rows": ("port",),
    "dns": ("action", "address"),
    "bind": ("port", "binder"),
    "exhaust_ports": ("target", "spare", "timeout"),
    "release_ports": (),
    "route": (),
    **ROUTER_OPS,
}


class Agent(RouterOps):
    """The ops, on an injectable command runner, /proc tree, kill function and clock."""

    def __init__(self, runner: RunsCommands | None = None, *, proc_root: Path = Path("/proc"),
                 capture_dir: Path = Path("/tmp"), kill: Callable[[int, int], None] = os.kill,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 interface: str = INTERFACE, api_port: int = AGENT_PORT, capture_limit: float = CAPTURE_LIMIT,
                 capture_ready_timeout: float = CAPTURE_READY_TIMEOUT,
                 capture_quiet: float = CAPTURE_QUIET, sandbox_uid: int | None = None,
                 driver_port: int = DRIVER_PORT, exhaustion: ports.Exhaustion | None = None,
                 forwarding: bool = False) -> None:
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
        self._rules: dict[str, Rule | DnsRule] = {}
        self._next_rule = 1
        self._captures: dict[str, TcpdumpCapture] = {}
        self._captures_lock = threading.Lock()
        self.sandbox_uid = sandbox_uid      # None: no sandbox beside this agent (the server-agent)
        self.driver_port = driver_port
        self._sandbox_targets: list[Target] = []
        self.exhaustion = exhaustion or ports.Exhaustion(proc_root, clock=clock)
        self._ports_lock = threading.Lock()
        self.route: router.RouterPlan | None = None   # set by install_router (the router-agent)
        # A router's faults are on its forwarding hop (FORWARD), an endpoint's on INPUT and OUTPUT.
        self.hooks = FORWARD_HOOKS if forwarding else ENDPOINT_HOOKS

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
            emit("internal-error", op=op, error=repr(exc))
            return {"ok": False, "error": f"{op}: internal error {type(exc).__name__}: {exc}"}
        return {"ok": True, **result}

    # The router ----------------------------------------------------------------
    def install_router(self, target: str, also: Sequence[tuple[str, tuple[int, ...]]] = ()) -> dict[str, Any]:
        """Be the NAT gateway to ``target``, and for ``also``'s ports to their hosts
        (lab/inlab/agent/router.py); idempotent."""
        server = router.resolve(target)
        others = [router.Forward(router.resolve(host), ports) for host, ports in also]
        listing = self.runner.run(["ip", "-j", "-4", "addr", "show"], timeout=COMMAND_TIMEOUT)
        if listing.returncode != 0:
            raise OpFailed(f"ip -j -4 addr show failed (exit {listing.returncode}): {listing.stderr.strip()}")
        route = router.plan(router.parse_ip_addr(listing.stdout), server, others=others)
        with self._iptables_lock:
            for argv in router.nat_rules(route):
                res = self._iptables(*argv, check=False)
                if res.returncode != 0 and not (argv[2] == "-N" and "exists" in res.stderr):
                    raise OpFailed(f"iptables {' '.join(argv)} failed (exit {res.returncode}): {res.stderr.strip()}")
            for hook, chain in router.hooks():
                if self._iptables("-t", "nat", "-C", hook, "-j", chain, check=False).returncode != 0:
                    self._iptables("-t", "nat", "-I", hook, "1", "-j", chain)
        self.route = route
        return route.as_dict()

    def op_route(self, _args: Args) -> dict[str, Any]:
        if self.route is None:
            raise OpFailed("route: this agent is not a router (started without --route-to)")
        return self.route.as_dict()

    def op_ping(self, _args: Args) -> dict[str, Any]:
        return {"pid": os.getpid(), "ops": list(OPS)}

    def op_health(self, args: Args) -> dict[str, Any]:
        """This namespace's health, for the lab's one healthcheck (lab.inlab.health --agent): what is wrong.

        Isolation (no default route) and, for each port of ``listening``, a listening socket in
        the kernel's table: read, never connected to, so a server under a fault never sees it.
        """
        from lab.inlab import health

        ports = args.ports("listening")
        problems = [f"not isolated: {r}" for r in health.default_routes(self.proc_root / "net")]
        problems += [p for p in (health.listening(port, self.proc_root / "net" / "tcp") for port in ports) if p]
        return {"problems": problems}

    # iptables ------------------------------------------------------------------
    def _iptables(self, *args: str, check: bool = True, tool: str = "iptables") -> Completed:
        res = self.runner.run([tool, "-w", "5", *args], timeout=COMMAND_TIMEOUT)
        if check and res.returncode != 0:
            raise OpFailed(f"{tool} {' '.join(args)} failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
        return res

    def ensure_chain(self) -> None:
        """Create LAB-FAULTS and hook it first in INPUT and OUTPUT, unless already done."""
        res = self._iptables("-N", CHAIN, check=False)
        if res.returncode != 0 and "exists" not in res.stderr:
            raise OpFailed(f"iptables -N {CHAIN} failed (exit {res.returncode}): {res.stderr.strip()} "
                           "(the agent needs root and CAP_NET_ADMIN)")
        for hook in sorted(set(self.hooks.values())):
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
        planned = plan_rules(port, peer_port, direction, syn_only, self.hooks)
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

    def op_dns(self, args: Args) -> dict[str, Any]:
        action = args.choice("action", ("drop", "reject", "count"))
        address = args.string("address", DOCKER_DNS)
        planned = plan_dns(action, address)
        with self._iptables_lock:
            self.ensure_chain()
            added: list[DnsRule] = []
            try:
                for kind, addr in planned:
                    rule = DnsRule(f"r{self._next_rule}", kind, addr)
                    self._next_rule += 1
                    self._iptables(*rule.args())
                    added.append(rule)
            except OpFailed:
                for rule in added:
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

    # The sandbox's firewall ------------------------------------------------------
    def install_sandbox(self, targets: Sequence[Target] = ()) -> dict[str, Any]:
        """Write LAB-SANDBOX (baseline plus ``targets``) and its OUTPUT jump; returns the rules in place.

        IPv4 must work or this raises :class:`OpFailed` (the caller must not serve then: graded
        code would be unrestricted). IPv6 is dropped when ip6tables works; when it does not,
        the reply says so in ``ipv6`` and IPv4 is still enforced.
        """
        if self.sandbox_uid is None:
            raise OpFailed("sandbox_allow: this agent guards no sandbox (it was started without --sandbox-uid; "
                           "only the client-agent is, at 127.0.0.1:9009 inside the client)")
        with self._iptables_lock:
            self.ensure_chain()  # LAB-FAULTS first in OUTPUT: faults must reach the sandbox's connections too
            rules = self._write_sandbox_chain("iptables", sandboxrules.chain_rules(targets,
                                                                                  driver_port=self.driver_port))
            try:
                rules6 = self._write_sandbox_chain("ip6tables", sandboxrules.chain_rules6())
                ipv6 = "dropped"
            except OpFailed as exc:
                rules6, ipv6 = [], f"unavailable: {exc}"
            self._sandbox_targets = list(targets)
        return {"uid": self.sandbox_uid, "targets": [list(t) for t in targets], "rules": rules,
                "rules6": rules6, "ipv6": ipv6}

    def _write_sandbox_chain(self, tool: str, rules: list[list[str]]) -> list[str]:
        chain = sandboxrules.CHAIN
        res = self._iptables("-N", chain, check=False, tool=tool)
        if res.returncode != 0 and "exists" not in res.stderr:
            raise OpFailed(f"{tool} -N {chain} failed (exit {res.returncode}): {res.stderr.strip()} "
                           "(the agent needs root and CAP_NET_ADMIN)")
        # One transaction: the chain is never empty, so the uid never falls through to OUTPUT's ACCEPT.
        path = self.capture_dir / f"sandbox-rules.{tool}"
        path.write_text(sandboxrules.restore_text(rules))
        try:
            res = self.runner.run([f"{tool}-restore", "-w", "5", "--noflush", str(path)], timeout=COMMAND_TIMEOUT)
        finally:
            path.unlink(missing_ok=True)
        if res.returncode != 0:
            raise OpFailed(f"{tool}-restore of {chain} failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")
        assert self.sandbox_uid is not None
        if self._iptables(*sandboxrules.jump_args(self.sandbox_uid, "-C"), check=False, tool=tool).returncode != 0:
            self._iptables(*sandboxrules.jump_args(self.sandbox_uid, "-A"), tool=tool)
        return sandboxrules.listed_rules(self._iptables("-S", chain, tool=tool).stdout)

    def op_sandbox_allow(self, args: Args) -> dict[str, Any]:
        targets = sandboxrules.read_targets(args)
        return self.install_sandbox(targets)

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
        peer_port = args.integer("peer_port", 1, 65535, None)
        if peer_port is not None:
            if target not in SERVER_TARGETS:
                raise BadRequest(f'signal: field "peer_port" picks a server\'s child by its connection; '
                                 f'accepted with targets {", ".join(SERVER_TARGETS)}, not {target!r}')
            found = self._child_serving(target, peer_port)
        else:
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

    def _child_serving(self, target: str, peer_port: int) -> list[ProcInfo]:
        """The live children of server ``target`` holding a connection whose remote port is ``peer_port``."""
        children = [p for p in lab_processes(self.proc_root, sockets=True) if p.role == f"{target}-child" and p.alive]
        serving = [p for p in children
                   if any(s["state"] != "LISTEN" and s["remote"].rsplit(":", 1)[1] == str(peer_port)
                          for s in p.sockets or ())]
        if not serving:
            held = "; ".join(f"{p.pid}: {', '.join(s['remote'] for s in p.sockets or ()) or 'no TCP socket seen'}"
                             for p in children) or "none"
            raise OpFailed(f"signal: no {target} child holds a connection from port {peer_port}; its children "
                           f"and their peers: {held}")
        return serving

    def _seen(self) -> str:
        procs = lab_processes(self.proc_root)
        return ", ".join(f"{p.pid} {p.role or p.module} ({p.state})" for p in procs) or "none"

    def op_processes(self, args: Args) -> dict[str, Any]:
        sockets = args.boolean("sockets", False)
        return {"processes": [p.describe() for p in lab_processes(self.proc_root, sockets=sockets)]}

    # The socket table, and a restart's bind ------------------------------------------
    def op_socket_rows(self, args: Args) -> dict[str, Any]:
        port = args.integer("port", 1, 65535, None)
        rows = tcptable.read(self.proc_root / "net" / "tcp")
        if port is not None:
            rows = [r for r in rows if port in (r.local[1], r.remote[1])]
        return {"rows": [describe_row(r) for r in rows]}

    def op_bind(self, args: Args) -> dict[str, Any]:
        from lab.server.binding import BINDERS

        port = args.integer("port", 1024, 65535)
        name = args.choice("binder", BINDERS)
        if port == self.api_port:
            raise BadRequest(f"bind: port {self.api_port} is the agent's own control port")
        # The table just before the attempt: what the kernel had on the port when bind() was judged.
        before = [describe_row(r) for r in tcptable.read(self.proc_root / "net" / "tcp") if r.local[1] == port]
        started = self.clock()
        try:
            sock = BINDERS[name]("0.0.0.0", port)
        except OSError as exc:
            import errno as errnos

            return {"bound": False, "errno": errnos.errorcode.get(exc.errno or 0), "error": type(exc).__name__,
                    "message": str(exc), "took_s": round(self.clock() - started, 6), "table": before}
        sock.close()
        return {"bound": True, "errno": None, "error": None, "message": "", "took_s": round(self.clock() - started, 6),
                "table": before}

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
        side = args.choice("side", ("lab", "backend")) if args.has("side") else None
        if side is not None and self.route is None:
            raise BadRequest('capture_start: "side" picks one of a router\'s links; this agent is not a router')
        capture = TcpdumpCapture(name, self.capture_dir / f"{name}.pcap", tokens)
        if self.route is not None:
            # A router has two links: the capture is on the one asked for (the lab's by default).
            capture.interface = (self.route.backend if side == "backend" else self.route.lab).name
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

    def tcpdump_argv(self, capture: TcpdumpCapture) -> list[str]:
        # -U writes each packet as it comes and --immediate-mode hands it over at once: without it
        # libpcap's TPACKET_V3 ring holds packets up to a second and SIGINT discards them.
        # -Z root keeps root (no SETUID needed), but tcpdump still calls initgroups(): CAP_SETGID.
        # In immediate mode libpcap's ring has one frame per packet, each as big as the snapshot
        # length: with tcpdump's default 256 KiB of snapshot and 2 MiB of buffer, 8 packets. A
        # burst of small segments while tcpdump waits for a CPU (several labs at once) then
        # overflows it. 65600 bytes hold the largest frame a veth hands over (a 64 KiB GSO packet
        # and its headers); 128 MiB hold about 2000 of them (32 MiB, 500, overflowed once under
        # the parallel suite: server-restart's burst of about 2000 packets while tcpdump waited).
        return ["tcpdump", "-U", "--immediate-mode", "-s", str(SNAPLEN), "-B", str(BUFFER_KIB),
                "-i", capture.interface or self.interface, "-w", str(capture.path),
                "-Z", "root",
                *capture.tokens]

    def _start_tcpdump(self, capture: TcpdumpCapture) -> None:
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

    def _auto_stop(self, capture: TcpdumpCapture) -> None:
        capture.auto_stopped = True
        capture.stop(quiet=self.capture_quiet)
        emit("capture-auto-stopped", name=capture.name, after_s=self.capture_limit)

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

    def op_tcp_table(self, args: Args) -> dict[str, Any]:
        port = args.integer("port", 1, 65535, None)
        try:
            rows = tcptable.parse((self.proc_root / "net" / "tcp").read_text(encoding="ascii", errors="replace"))
        except OSError as exc:
            raise OpFailed(f"tcp_table: cannot read {exc.filename}: {exc.strerror}") from exc
        if port is not None:
            rows = [r for r in rows if port in (r.local[1], r.remote[1])]
        return {"columns": ["local_ip", "local_port", "remote_ip", "remote_port", "state", "uid", "tx_queue",
                            "rx_queue"], "rows": [r.as_list() for r in rows]}

    # Ephemeral ports ---------------------------------------------------------------
    def op_exhaust_ports(self, args: Args) -> dict[str, Any]:
        if not args.has("target"):
            raise BadRequest('exhaust_ports: field "target" is required: [IPv4 address, TCP port]')
        try:
            # Args has typed readers for scalars only; the pair is fetched raw and checked by parse_target.
            target = ports.parse_target(args._get("target", None))  # noqa: SLF001
        except ValueError as exc:
            raise BadRequest(f'exhaust_ports: field "target": {exc}') from None
        spare = args.integer("spare", 1, ports.MAX_SPARE, 4)
        timeout = args.number("timeout", 0.0, ports.MAX_DEADLINE, ports.DEFAULT_DEADLINE)
        if not self._ports_lock.acquire(blocking=False):
            raise OpFailed("exhaust_ports: another exhaust_ports or release_ports is under way")
        try:
            return self.exhaustion.start(target, spare, timeout)
        except ports.PortsError as exc:
            raise OpFailed(str(exc)) from exc
        except OSError as exc:
            raise OpFailed(f"exhaust_ports: {type(exc).__name__}: {exc}") from exc
        finally:
            self._ports_lock.release()

    def op_release_ports(self, _args: Args | None = None) -> dict[str, Any]:
        with self._ports_lock:
            return {"released": self.exhaustion.release()}

    def abort_orphans(self) -> int:
        """Abort this namespace's closing connections to the servers' ports (``ss -K``, SOCK_DESTROY).

        A connection closed while its peer was cut off keeps its FIN (and any data before it) in
        the kernel, retransmitted with a doubling gap for minutes. Once the path heals, one of
        those retransmissions reaches the server in the middle of a later scenario, a segment no
        subject of that scenario sent. Between scenarios they go: an RST where the kernel can
        send one, and the socket is gone. Returns how many there were.
        """
        ports = " or ".join(f"dport = :{p}" for p in sorted(SERVER_PORTS.values()))
        argv = ["ss", "-K", "-t", "-n", "-H", "state", "fin-wait-1", "state", "closing", "state", "last-ack",
                f"( {ports} )"]
        res = self.runner.run(argv, timeout=COMMAND_TIMEOUT)
        if res.returncode != 0:
            emit("orphans-not-aborted", error=(res.stderr or res.stdout).strip()[:300])
            return 0
        return len([line for line in res.stdout.splitlines() if line.strip()])

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
                if proc.role is not None and proc.role.removesuffix("-child") in SERVER_TARGETS and proc.stopped:
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
        if self.route is not None:   # the router's: its packet handler, path chains, MTU
            path = self.reset_path()
            errors += path.pop("errors", [])
            result["path"] = path
        try:
            result["ports_released"] = self.op_release_ports()["released"]
        except OSError as exc:
            errors.append(f"reset: release_ports: {exc}")
        if self.sandbox_uid is not None:   # the client-agent
            result["orphans_aborted"] = self.abort_orphans()
            try:
                result["sandbox_targets"] = self.install_sandbox([])["targets"]
            except OpFailed as exc:
                errors.append(str(exc))
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
