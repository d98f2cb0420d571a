"""The router-agent's own ops: the path's faults that are more than a DROP or REJECT rule.

- ``mangle``: one NFQUEUE packet fault (duplicate, reorder, delay, corrupt;
  :mod:`~lab.inlab.agent.pathfaults`) on the server port's segments going one way, handled in this
  process (:mod:`~lab.inlab.agent.nfqueue`); ``mangle_counters`` reads what it did.
- ``idle_expiry``: the stateful firewall that forgets idle connections. New connections to the
  port get a conntrack timeout policy with a short established timeout
  (:mod:`~lab.inlab.agent.conntrack`, ``iptables -t raw ... -j CT --timeout``); once an entry is
  gone, the router drops the connection's next packets as a firewall does (a segment that is not a
  SYN and matches no entry: NEW without SYN, or INVALID).
- ``link_mtu``: a smaller MTU on the router's backend link, with the ICMP "fragmentation needed"
  it would send dropped (a PMTU black hole, RFC 2923), or with MSS clamping instead.
- ``conntrack``: the router's conntrack entries for a port, for proofs.

Every rule goes in LAB-FAULTS (jumped to from FORWARD), or in the chains named below, and
``reset_path`` undoes all of it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable

from lab.inlab.agent import conntrack, nfqueue, packets, pathfaults
from lab.inlab.agent.iptables import CHAIN, COMMENT_PREFIX, parse_counters
from lab.inlab.agent.requests import Args, BadRequest, OpFailed

QUEUE = 7                         # the NFQUEUE number the router's handler binds
IDLE_POLICY = "lab-idle"          # the conntrack timeout policy's name
RAW_CHAIN = "LAB-PATH-RAW"        # raw PREROUTING: which new connections get the short timeout
STATE_CHAIN = "LAB-PATH-STATE"    # filter FORWARD and INPUT: what a forgetful firewall drops
MANGLE_CHAIN = "LAB-PATH-MSS"     # mangle FORWARD: MSS clamping
ICMP_CHAIN = "LAB-PATH-ICMP"      # filter OUTPUT: the router's own "fragmentation needed", dropped
NOTRACK_CHAIN = "LAB-PATH-COPY"   # raw OUTPUT: the packet handler's injected copies skip conntrack
MANGLE_FIELDS = ("kind", "port", "direction", "control", "data_only", "every", "probability", "seed", "copies",
                 "hold_ms", "max_hold_ms", "delay_ms", "jitter_ms", "mode", "limit", "offset", "mask", "per_connection")
ROUTER_OPS: dict[str, tuple[str, ...]] = {
    "mangle": MANGLE_FIELDS,
    "mangle_counters": (),
    "idle_expiry": ("port", "established"),
    "link_mtu": ("mtu", "black_hole", "clamp_mss"),
    "conntrack": ("port",),
    "path_counters": (),
}
DEFAULT_MTU = 1500


class RouterOps:
    """Mixed into :class:`~lab.inlab.agent.service.Agent`; uses its ``_iptables``, ``runner`` and ``route``."""

    _iptables: Callable[..., Any]
    route: Any
    _iptables_lock: threading.Lock

    def _router_only(self, op: str) -> Any:
        if self.route is None:
            raise OpFailed(f"{op}: only the router-agent does this (started with --route-to)")
        return self.route

    def _chain(self, table: str, chain: str, hooks: tuple[str, ...]) -> None:
        res = self._iptables("-t", table, "-N", chain, check=False)
        if res.returncode != 0 and "exists" not in res.stderr:
            raise OpFailed(f"iptables -t {table} -N {chain} failed: {res.stderr.strip()}")
        for hook in hooks:
            if self._iptables("-t", table, "-C", hook, "-j", chain, check=False).returncode != 0:
                self._iptables("-t", table, "-I", hook, "1", "-j", chain)

    # mangle ------------------------------------------------------------------------------------
    def op_mangle(self, args: Args) -> dict[str, Any]:
        self._router_only("mangle")
        spec = {k: args._get(k, None) for k in MANGLE_FIELDS if args.has(k)}  # noqa: SLF001 - decoded below
        try:
            fault = pathfaults.fault_from_dict(spec)
        except ValueError as exc:
            raise BadRequest(f"mangle: {exc}") from None
        handler = getattr(self, "_handler", None)
        if handler is not None and handler.running:
            raise OpFailed("mangle: a packet fault is already in place; reset first")
        port, way = fault.match.port, fault.match.direction
        matches = {"to": [["--dport", str(port)]], "from": [["--sport", str(port)]],
                   "both": [["--dport", str(port)], ["--sport", str(port)]]}[way]
        route = self.route
        with self._iptables_lock:
            try:
                queue = nfqueue.NfQueue(QUEUE, fail_open=True)
            except OSError as exc:
                raise OpFailed(f"mangle: cannot bind NFQUEUE {QUEUE}: {exc}") from exc
            try:
                injector = NatInjector(route)
            except OSError as exc:
                queue.close()
                raise OpFailed(f"mangle: cannot open the raw socket for copies: {exc}") from exc
            self._handler = nfqueue.Handler(queue, fault.policy(), injector=injector, owns=True).start()
            self._chain("raw", NOTRACK_CHAIN, ("OUTPUT",))
            for match in (["-o", route.backend.name, "-d", route.server, "--dport", str(port)],
                          ["-o", route.lab.name, "--sport", str(port)]):
                self._iptables("-t", "raw", "-A", NOTRACK_CHAIN, "-p", "tcp", *match, "-j", "CT", "--notrack")
            self._handler_final: dict[str, int] | None = None
            self.ensure_chain()   # type: ignore[attr-defined]
            added = []
            for i, match in enumerate(matches):
                rule_id = f"q{i + 1}"
                argv = ["-A", CHAIN, "-p", "tcp", *match, "-m", "comment", "--comment", f"{COMMENT_PREFIX}{rule_id}",
                        "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]
                self._iptables(*argv)
                added.append(" ".join(match))
        return {"kind": fault.kind, "queue": QUEUE, "rules": added, "fault": spec}

    def op_mangle_counters(self, _args: Args) -> dict[str, Any]:
        self._router_only("mangle_counters")
        handler = getattr(self, "_handler", None)
        final = getattr(self, "_handler_final", None)
        if handler is None:
            return {"running": False, "counters": final or {}}
        return {"running": handler.running, "counters": handler.counters()}

    def stop_mangle(self) -> dict[str, int] | None:
        handler = getattr(self, "_handler", None)
        if handler is None:
            return None
        self._handler = None
        try:
            self._handler_final = handler.stop()
        except OSError as exc:
            self._handler_final = {"error": 1}
            raise OpFailed(f"mangle: the handler failed: {exc}") from exc
        return self._handler_final

    # the forgetful firewall ----------------------------------------------------------------------
    def op_idle_expiry(self, args: Args) -> dict[str, Any]:
        self._router_only("idle_expiry")
        port = args.integer("port", 1, 65535)
        established = args.integer("established", 1, 3600)
        try:
            conntrack.create_timeout_policy(conntrack.TcpTimeoutPolicy(IDLE_POLICY, established=established),
                                            replace=True)
        except OSError as exc:
            raise OpFailed(f"idle_expiry: cannot create the conntrack timeout policy: {exc}") from exc
        with self._iptables_lock:
            self._chain("raw", RAW_CHAIN, ("PREROUTING",))
            self._chain("filter", STATE_CHAIN, ("FORWARD", "INPUT"))
            self._iptables("-t", "raw", "-A", RAW_CHAIN, "-p", "tcp", "--dport", str(port), "-j", "CT",
                           "--timeout", IDLE_POLICY)
            # A segment of a forgotten connection: in loose mode (Linux's default) conntrack would
            # pick it up as NEW and NAT it again, so the rule names both ways a firewall sees it.
            for where in (["--dport", str(port)], ["--sport", str(port)]):
                self._iptables("-A", STATE_CHAIN, "-p", "tcp", *where, "!", "--syn", "-m", "conntrack",
                               "--ctstate", "NEW,INVALID", "-m", "comment", "--comment", f"{COMMENT_PREFIX}idle",
                               "-j", "DROP")
        return {"policy": IDLE_POLICY, "established": established, "port": port}

    def _matched(self, chain: str, tag: str) -> int:
        """Packets the rules of ``chain`` commented ``socket-lab:<tag>`` matched (0 if the chain is absent)."""
        listing = self._iptables("-L", chain, "-v", "-x", "-n", check=False)
        return sum(r["packets"] for r in parse_counters(listing.stdout) if r["id"] == tag)

    def idle_drops(self) -> int:
        return self._matched(STATE_CHAIN, "idle")

    def op_conntrack(self, args: Args) -> dict[str, Any]:
        self._router_only("conntrack")
        port = args.integer("port", 1, 65535)
        try:
            entries = conntrack.entries_for_port(conntrack.read_table(), port)
        except OSError as exc:
            raise OpFailed(f"conntrack: cannot read {conntrack.PROC_PATH}: {exc}") from exc
        return {"entries": [entry_dict(e) for e in entries]}

    # the link's MTU --------------------------------------------------------------------------
    def op_link_mtu(self, args: Args) -> dict[str, Any]:
        route = self._router_only("link_mtu")
        mtu = args.integer("mtu", 576, 9000)
        black_hole = args.boolean("black_hole", True)
        clamp = args.boolean("clamp_mss", False)
        self._set_mtu(route.backend.name, mtu)
        with self._iptables_lock:
            if black_hole:
                self._chain("filter", ICMP_CHAIN, ("OUTPUT",))
                self._iptables("-A", ICMP_CHAIN, "-p", "icmp", "--icmp-type", "fragmentation-needed", "-m", "comment",
                               "--comment", f"{COMMENT_PREFIX}frag-needed", "-j", "DROP")
            if clamp:
                # Both ways: each side's SYN tells the other the largest segment it may send.
                self._chain("mangle", MANGLE_CHAIN, ("FORWARD",))
                self._iptables("-t", "mangle", "-A", MANGLE_CHAIN, "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN",
                               "-j", "TCPMSS", "--set-mss", str(mtu - 40))
        return {"interface": route.backend.name, "mtu": mtu, "black_hole": black_hole, "clamp_mss": clamp}

    def frag_needed_dropped(self) -> int:
        return self._matched(ICMP_CHAIN, "frag-needed")

    def op_path_counters(self, _args: Args) -> dict[str, Any]:
        """Packets the path's own rules dropped: a forgotten connection's, the router's frag-needed ICMP."""
        self._router_only("path_counters")
        return {"idle_drops": self.idle_drops(), "frag_needed_dropped": self.frag_needed_dropped()}

    def _set_mtu(self, interface: str, mtu: int) -> None:
        res = self.runner.run(["ip", "link", "set", "dev", interface, "mtu", str(mtu)], timeout=10.0)  # type: ignore[attr-defined]
        if res.returncode != 0:
            raise OpFailed(f"ip link set dev {interface} mtu {mtu} failed: {res.stderr.strip()}")

    # undoing it all ------------------------------------------------------------------------------
    def reset_path(self) -> dict[str, Any]:
        """Stop the packet handler, flush every path chain, the MTU back, the timeout policy gone."""
        done: dict[str, Any] = {"mangle": None, "mtu": None}
        if self.route is None:
            return done
        errors = []
        try:
            done["mangle"] = self.stop_mangle()
        except OpFailed as exc:
            errors.append(str(exc))
        with self._iptables_lock:
            for table, chain in (("raw", RAW_CHAIN), ("filter", STATE_CHAIN), ("mangle", MANGLE_CHAIN),
                                 ("filter", ICMP_CHAIN), ("raw", NOTRACK_CHAIN)):
                self._iptables("-t", table, "-F", chain, check=False)
        try:
            self._set_mtu(self.route.backend.name, DEFAULT_MTU)
            done["mtu"] = DEFAULT_MTU
        except OpFailed as exc:
            errors.append(str(exc))
        # The policy stays while entries still use it (EBUSY); create replaces it next time.
        with contextlib.suppress(OSError):
            conntrack.delete_timeout_policy(IDLE_POLICY)
        if errors:
            done["errors"] = errors
        return done


class NatInjector(nfqueue.RawInjector):
    """Injects a copy of a forwarded packet as it would leave the router after NAT.

    A packet queued in FORWARD has its destination NAT'ed already but not yet its source: sent
    as it is, a copy would carry the client's address onto the backend network (Docker drops it
    there) or the server's onto the lab network. The copy gets the router's own address on the
    link it leaves by, and its checksums are recomputed; the raw table's NOTRACK rule keeps
    conntrack from NAT'ing it again (it would pick another port: the original holds this one).
    """

    def __init__(self, route: Any) -> None:
        super().__init__()
        self.route = route

    def send(self, packet: bytes) -> None:
        if len(packet) >= 20:
            to_server = socket.inet_ntoa(packet[16:20]) == self.route.server
            source = self.route.backend.address if to_server else self.route.lab.address
            packet = packets.with_checksums(packet[:12] + socket.inet_aton(source) + packet[16:])
        super().send(packet)


def entry_dict(e: conntrack.Entry) -> dict[str, Any]:
    return {"state": e.state, "timeout": e.timeout, "src": e.original.src, "sport": e.original.sport,
            "dst": e.original.dst, "dport": e.original.dport, "flags": sorted(e.flags)}


__all__ = ["RouterOps", "ROUTER_OPS", "QUEUE", "IDLE_POLICY"]
