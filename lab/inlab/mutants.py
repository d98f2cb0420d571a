"""Weakened faults for the mutation suite: each one does nothing, or less than its fault claims.

A fault proof is only worth something if it fails when the fault did not happen, or happened
less. Each :class:`Mutant` below names a fault and one way of weakening it: a no-op, the wrong
server or port, one direction only, a tenth of the magnitude, a harmless signal for a deadly
one, toxicity 0. ``lab selftest`` (:mod:`lab.host.selftest`) runs every scenario that uses the
fault with the mutant in its place and requires a *fidelity proof* to fail: an oracle that
notices the difference is not enough, because an oracle judges the code, not the fault.

Mutants never edit a fault's code. The runner (``--mutant FAULT:NAME``, a test-only option)
hands the fault a :class:`MutatedContext` instead of its real context: the same context, except
that the requests the fault sends to the agent, to Toxiproxy and to the server's control port
are rewritten on the way out (or swallowed), exactly as a buggy fault would send them. What the
fault and the scenario then *read* back (counters, captures, process lists, toxic listings) is
the real state of the lab, so the proofs see what really happened.

Standard library only: the runner in the client container uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from lab.toolerrors import UsageError

Rewrite = Callable[[Any], Any] | Any     # a new value, or a function of the old one


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One weakened fault: which fault, its name, what it does instead, and how its requests change."""

    fault: str
    name: str
    does: str
    swallow: frozenset[str] = frozenset()        # calls dropped on the floor: block, signal, add_toxic, behave, dns,
    #                                              exhaust_ports
    block: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)   # server_agent.block arguments
    signal: Mapping[str, str] = dataclasses.field(default_factory=dict)      # signal renames, e.g. KILL -> CONT
    server: Mapping[str, str] = dataclasses.field(default_factory=dict)      # target renames (signals, control)
    toxic: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)   # add_toxic fields (and proxy)
    control: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)  # server_control(cmd="behave") fields
    dns: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)      # client_agent.dns arguments
    clock: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)    # wall_clock.jump arguments
    aim: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)      # signal's other fields (peer_port);
    #                                                                           None leaves the field out
    ports: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)    # client_agent.exhaust_ports fields
    path: Mapping[str, Rewrite] = dataclasses.field(default_factory=dict)     # router_agent.mangle, idle_expiry
    #                                                                           and link_mtu fields

    @property
    def key(self) -> str:
        return f"{self.fault}:{self.name}"


def _scaled(factor: float) -> Callable[[Any], Any]:
    def scale(value: Any) -> Any:
        scaled = value * factor
        return int(scaled) if isinstance(value, int) else scaled
    return scale


OTHER_SERVER = {"threaded": "selectors", "selectors": "threaded", "forking": "threaded"}
OTHER_PORT = {7000: 7100, 7100: 7000, 7200: 7000}
OTHER_STREAM = {"upstream": "downstream", "downstream": "upstream"}


def _iptables(fault: str, *extra: Mutant) -> list[Mutant]:
    return [Mutant(fault, "no-op", "installs no rule at all", swallow=frozenset({"block"})),
            Mutant(fault, "wrong-port", "matches the other server's port", block={"port": OTHER_PORT.get}),
            *extra]


def _toxic(fault: str, *extra: Mutant) -> list[Mutant]:
    return [Mutant(fault, "no-op", "adds no toxic", swallow=frozenset({"add_toxic", "remove_toxic"})),
            Mutant(fault, "toxicity-0", "adds the toxic with toxicity 0 (it applies to no connection)",
                   toxic={"toxicity": 0.0}),
            Mutant(fault, "wrong-proxy", "adds the toxic to the other server's proxy",
                   toxic={"proxy": OTHER_SERVER.get}),
            *extra]


def _path(fault: str, op: str, *extra: Mutant) -> list[Mutant]:
    return [Mutant(fault, "no-op", f"asks the router for nothing ({op} swallowed)", swallow=frozenset({op})),
            Mutant(fault, "wrong-port", "aims at the other server's port", path={"port": OTHER_PORT.get})
            if op != "link_mtu" else Mutant(fault, "tiny-change", "lowers the MTU by 8 bytes only",
                                            path={"mtu": 1492}),
            *extra]


def _dns(fault: str, *extra: Mutant) -> list[Mutant]:
    return [Mutant(fault, "no-op", "installs no rule on the resolver's queries", swallow=frozenset({"dns"})),
            Mutant(fault, "wrong-address", "matches 127.0.0.12, where no resolver is", dns={"address": "127.0.0.12"}),
            *extra]


CATALOGUE: list[Mutant] = [
    *_iptables("vanish",
               Mutant("vanish", "in-only", "drops only what comes in to the server", block={"direction": "in"}),
               Mutant("vanish", "out-only", "drops only what the server sends", block={"direction": "out"})),
    *_iptables("loss",
               Mutant("loss", "tenth", "drops a tenth of the configured share", block={"probability": _scaled(0.1)}),
               Mutant("loss", "in-only", "drops only what comes in to the server", block={"direction": "in"}),
               Mutant("loss", "out-only", "drops only what the server sends", block={"direction": "out"})),
    *_iptables("reject",
               Mutant("reject", "drop", "drops silently instead of answering with RST", block={"action": "drop"}),
               Mutant("reject", "syn-only", "resets only new connections' SYNs, not the established ones",
                      block={"syn_only": True})),
    *_iptables("syn-drop",
               Mutant("syn-drop", "reject", "answers SYNs with RST instead of dropping them",
                      block={"action": "reject-rst"})),
    *_iptables("partition",
               Mutant("partition", "other-way", "cuts the other direction",
                      block={"direction": {"in": "out", "out": "in"}.get}),
               Mutant("partition", "both-ways", "cuts both directions: a black hole, not a one-way partition",
                      block={"direction": "both"}),
               Mutant("partition", "tenth", "drops a tenth of the packets instead of all", block={"probability": 0.1})),
    *_iptables("unreachable",
               Mutant("unreachable", "silent", "drops silently instead of answering with ICMP", block={"action": "drop"}),
               Mutant("unreachable", "port-unreachable", "sends ICMP port unreachable whatever was asked",
                      block={"action": "reject-port-unreachable"}),
               Mutant("unreachable", "rst", "answers with a TCP RST instead of ICMP", block={"action": "reject-rst"})),
    *_path("duplicate", "mangle",
           Mutant("duplicate", "rarely", "duplicates one segment in a hundred instead", path={"every": 100}),
           Mutant("duplicate", "other-way", "duplicates the server's segments instead of the client's",
                  path={"direction": "from"})),
    *_path("reorder", "mangle",
           Mutant("reorder", "rarely", "reorders one segment in a hundred instead", path={"every": 100}),
           Mutant("reorder", "other-way", "reorders the server's segments instead of the client's",
                  path={"direction": "from"})),
    *_path("corrupt", "mangle",
           Mutant("corrupt", "other-way", "corrupts the client's segments instead of the server's",
                  path={"direction": "to"}),
           Mutant("corrupt", "other-mode", "recomputes the checksum when asked to leave it wrong, and the other "
                  "way round", path={"mode": {"bad-checksum": "recompute", "recompute": "bad-checksum"}.get})),
    *_path("hop-delay", "mangle",
           Mutant("hop-delay", "tenth", "a tenth of the delay", path={"delay_ms": _scaled(0.1)}),
           Mutant("hop-delay", "other-way", "delays the server's segments instead of the client's",
                  path={"direction": "from"})),
    *_path("idle-expiry", "idle_expiry",
           Mutant("idle-expiry", "tenfold", "forgets connections only after ten times the idle time",
                  path={"established": _scaled(10)})),
    *_path("pmtu", "link_mtu",
           Mutant("pmtu", "full-mtu", "leaves the backend link's MTU at 1500", path={"mtu": 1500}),
           Mutant("pmtu", "icmp-passes", "lets the router's fragmentation-needed ICMP through",
                  path={"black_hole": False})),
    Mutant("freeze", "no-op", "sends no signal", swallow=frozenset({"signal"})),
    Mutant("freeze", "wrong-server", "freezes the other server", server=OTHER_SERVER),
    Mutant("freeze", "cont", "sends SIGCONT instead of SIGSTOP", signal={"STOP": "CONT"}),
    Mutant("crash", "no-op", "sends no signal", swallow=frozenset({"signal"})),
    Mutant("crash", "cont", "sends SIGCONT instead of SIGKILL", signal={"KILL": "CONT"}),
    Mutant("crash", "wrong-server", "kills the other server", server=OTHER_SERVER),
    Mutant("reboot", "no-cut", "kills the server without cutting its port off: a plain crash, its RST goes out",
           swallow=frozenset({"block"})),
    Mutant("reboot", "no-kill", "cuts the port off and opens it again, but sends no signal", swallow=frozenset({"signal"})),
    Mutant("reboot", "cont", "sends SIGCONT instead of SIGKILL", signal={"KILL": "CONT"}),
    Mutant("reboot", "in-only", "cuts off only what comes in to the server", block={"direction": "in"}),
    Mutant("nofile", "no-op", "leaves the server's descriptor limit as it was", swallow=frozenset({"behave"})),
    Mutant("nofile", "wrong-server", "lowers the other server's limit", server=OTHER_SERVER),
    Mutant("nofile", "tenfold", "a limit ten times higher", control={"nofile": _scaled(10)}),
    Mutant("kill-child", "no-op", "sends no signal: the child is neither stopped nor killed",
           swallow=frozenset({"signal"})),
    Mutant("kill-child", "cont", "sends SIGCONT instead of SIGSTOP and SIGKILL", signal={"STOP": "CONT", "KILL": "CONT"}),
    Mutant("kill-child", "listener", "signals the forking server's listener instead of the child that holds "
           "the connection", aim={"peer_port": None}),
    Mutant("refuse", "no-op", "does not ask the supervisor to stop the servers", swallow=frozenset({"signal"})),
    Mutant("refuse", "cont", "sends the supervisor SIGCONT instead of the stop request", signal={"USR1": "CONT"}),
    Mutant("refuse", "brief", "kills only the threaded server, which the supervisor restarts 0.5 s later",
           server={"supervisor": "threaded"}, signal={"USR1": "KILL", "USR2": "CONT"}),  # its clear-up: harmless
    Mutant("behave", "no-op", "leaves the server's behaviour as it was", swallow=frozenset({"behave"})),
    Mutant("behave", "wrong-server", "changes the other server's behaviour", server=OTHER_SERVER),
    Mutant("behave", "later", "applies the behaviour ten messages later", control={"after": lambda n: (n or 0) + 10}),
    Mutant("exhaust-ports", "no-op", "claims no port and opens no connection", swallow=frozenset({"exhaust_ports"})),
    Mutant("exhaust-ports", "wrong-destination", "exhausts the ports for the other server's port instead",
           ports={"target": lambda t: (t[0], OTHER_PORT.get(t[1], t[1]))}),
    Mutant("exhaust-ports", "gives-up", "stops claiming after 50 ms, most of the range still free",
           ports={"timeout": 0.05}),
    *_toxic("latency", Mutant("latency", "tenth", "a tenth of the latency", toxic={"latency": _scaled(0.1)}),
            Mutant("latency", "other-stream", "delays the other direction", toxic={"stream": OTHER_STREAM.get})),
    *_toxic("bandwidth", Mutant("bandwidth", "tenfold", "ten times the rate", toxic={"rate": _scaled(10)}),
            Mutant("bandwidth", "other-stream", "limits the other direction", toxic={"stream": OTHER_STREAM.get})),
    *_toxic("limit-data", Mutant("limit-data", "later", "cuts ten times later", toxic={"bytes": _scaled(10)})),
    # 6 s: later than robust's 5 s read deadline, so its RST comes after the client's own FIN (a
    # teardown RST), yet before the watchdog, so removing the toxic never waits on its timer.
    *_toxic("reset-peer", Mutant("reset-peer", "late", "resets 6 s after the first data instead of at once",
                                 toxic={"timeout": 6000})),
    *_toxic("slicer", Mutant("slicer", "tenfold", "pieces ten times larger", toxic={"average_size": _scaled(10)}),
            Mutant("slicer", "other-stream", "slices the other direction", toxic={"stream": OTHER_STREAM.get})),
    *_dns("dns-silent", Mutant("dns-silent", "reject", "answers the queries with ICMP port unreachable instead of "
                               "silence", dns={"action": "reject"})),
    *_dns("dns-refused", Mutant("dns-refused", "drop", "drops the queries instead of refusing them",
                                dns={"action": "drop"})),
    Mutant("clock-jump", "no-op", "writes no offset: the wall clock does not move", swallow=frozenset({"jump"})),
    Mutant("clock-jump", "tenth", "jumps a tenth as far", clock={"offset_s": lambda s: int(s / 10)}),
    Mutant("clock-jump", "other-way", "jumps the other way", clock={"offset_s": lambda s: -s}),
    *_toxic("slow-close", Mutant("slow-close", "tenth", "a tenth of the delay", toxic={"delay": _scaled(0.1)})),
    *_toxic("timeout", Mutant("timeout", "closes", "closes the connection 0.5 s after the last data instead of "
                              "holding it", toxic={"timeout": 500}),
            Mutant("timeout", "other-stream", "holds the client's bytes instead of the server's",
                   toxic={"stream": OTHER_STREAM.get})),
]

BY_KEY: dict[str, Mutant] = {m.key: m for m in CATALOGUE}


def get(key: str) -> Mutant:
    """The mutant ``FAULT:NAME``, or a UsageError listing the ones there are."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise UsageError(f"unknown mutant {key!r}; known mutants: {', '.join(sorted(BY_KEY))}") from None


def for_fault(fault: str) -> list[Mutant]:
    return [m for m in CATALOGUE if m.fault == fault]


def _rewrite(fields: dict[str, Any], rules: Mapping[str, Rewrite]) -> dict[str, Any]:
    out = dict(fields)
    for key, rule in rules.items():
        out[key] = rule(out.get(key)) if callable(rule) else rule
    return out


class _Rewriting:
    """A stand-in for the server agent or Toxiproxy client: rewrites or swallows a few calls, passes the rest."""

    def __init__(self, real: Any, mutant: Mutant, log: Callable[[str], None]) -> None:
        self._real, self._mutant, self._log = real, mutant, log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    # the server agent
    def block(self, port: int | None = None, **fields: Any) -> Any:
        if "block" in self._mutant.swallow:
            self._log("block swallowed")
            return []
        changed = _rewrite({"port": port, **fields}, self._mutant.block)
        self._log(f"block {changed}")
        return self._real.block(**changed)

    def signal(self, target: str, signal: str, **fields: Any) -> Any:
        if "signal" in self._mutant.swallow:
            self._log(f"signal {signal} to {target} swallowed")
            return []
        target = self._mutant.server.get(target, target)
        signal = self._mutant.signal.get(signal, signal)
        fields = {k: v for k, v in _rewrite(fields, self._mutant.aim).items() if v is not None}
        self._log(f"signal {signal} to {target}" + (f" {fields}" if fields else ""))
        return self._real.signal(target, signal, **fields)

    def wait_process(self, target: str, state: str, **kwargs: Any) -> Any:
        return self._real.wait_process(self._mutant.server.get(target, target), state, **kwargs)

    # the client agent
    def dns(self, action: str, **fields: Any) -> Any:
        if "dns" in self._mutant.swallow:
            self._log(f"dns {action} swallowed")
            return []
        changed = _rewrite({"action": action, **fields}, self._mutant.dns)
        self._log(f"dns {changed}")
        return self._real.dns(**changed)

    # the wall clock of the faked processes
    def jump(self, offset_s: int) -> Any:
        if "jump" in self._mutant.swallow:
            self._log(f"clock jump {offset_s:+d} s swallowed")
            return None
        changed = _rewrite({"offset_s": offset_s}, self._mutant.clock)
        self._log(f"clock jump {changed}")
        return self._real.jump(**changed)
    def exhaust_ports(self, target: tuple[str, int], **fields: Any) -> Any:
        if "exhaust_ports" in self._mutant.swallow:
            self._log("exhaust_ports swallowed")
            return {}
        changed = _rewrite({"target": target, **fields}, self._mutant.ports)
        self._log(f"exhaust_ports {changed}")
        return self._real.exhaust_ports(changed.pop("target"), **changed)

    # the router agent's path ops: swallowed by their own names, their fields rewritten by ``path``
    def _path(self, op: str, fields: dict[str, Any]) -> Any:
        if op in self._mutant.swallow:
            self._log(f"{op} swallowed")
            return {}
        changed = _rewrite(fields, self._mutant.path)
        self._log(f"{op} {changed}")
        return getattr(self._real, op)(**changed)

    def mangle(self, kind: str, port: int, **fields: Any) -> Any:
        return self._path("mangle", {"kind": kind, "port": port, **fields})

    def idle_expiry(self, port: int, established: int) -> Any:
        return self._path("idle_expiry", {"port": port, "established": established})

    def link_mtu(self, mtu: int, **fields: Any) -> Any:
        return self._path("link_mtu", {"mtu": mtu, **fields})

    # Toxiproxy
    def add_toxic(self, proxy: str, kind: str, **fields: Any) -> Any:
        if "add_toxic" in self._mutant.swallow:
            self._log(f"{kind} toxic swallowed")
            return {}
        changed = _rewrite({"proxy": proxy, **fields}, self._mutant.toxic)
        proxy = changed.pop("proxy")
        self._log(f"{kind} toxic on {proxy}: {changed}")
        return self._real.add_toxic(proxy, kind, **changed)

    def remove_toxic(self, proxy: str, name: str) -> Any:
        if "remove_toxic" in self._mutant.swallow:
            return None
        # Only the proxy rule applies here: the toxic's other fields are not part of a removal.
        where = {key: rule for key, rule in self._mutant.toxic.items() if key == "proxy"}
        return self._real.remove_toxic(_rewrite({"proxy": proxy}, where)["proxy"], name)


class MutatedContext:
    """The runner's context as a mutant fault sees it: its outgoing requests rewritten, all else the same."""

    def __init__(self, ctx: Any, mutant: Mutant) -> None:
        self._ctx, self._mutant = ctx, mutant
        self.server_agent = _Rewriting(ctx.server_agent, mutant, self._log)
        for name in ("client_agent", "router_agent", "wall_clock"):   # not every stand-in context has these
            real = getattr(ctx, name, None)
            if real is not None:
                setattr(self, name, _Rewriting(real, mutant, self._log))
        self.toxiproxy = _Rewriting(ctx.toxiproxy, mutant, self._log)

    def _log(self, what: str) -> None:
        self._ctx.mark("lab", f"mutant {self._mutant.key}: {what}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def server_control(self, server: str = "threaded", **request: Any) -> Any:
        server = self._mutant.server.get(server, server)
        if request.get("cmd") == "behave":
            if "behave" in self._mutant.swallow:
                self._log("behave swallowed")
                return self._ctx.server_control(server, cmd="stats") | {"behaviour": {}}
            request = _rewrite(request, self._mutant.control)
            self._log(f"behave on {server}: {request}")
        return self._ctx.server_control(server, **request)
