"""Client for the fault agent's control API (:mod:`lab.inlab.agent.api`); standard library only.

A scenario runs inside the client container and steers both agents without
any Docker socket::

    server = AgentClient("server")          # the server-agent, in the server's namespace
    client = AgentClient("127.0.0.1")       # the client-agent, in the client's own namespace
    server.reset()
    try:
        ids = server.block(7000, direction="in", syn_only=True)
        ...                                  # connect to server:7000 and watch it time out
        assert server.counters()[0]["packets"] > 0
        old = server.signal("threaded", "KILL")[0]
        server.wait_process("threaded", "new", not_pid=old)
    finally:
        server.reset()

    client.sandbox_allow([("172.18.0.3", 7000)])   # graded code may reach this, and nothing else

Each call opens one connection, sends one JSON line and reads one reply.
``ok: false`` replies and connection problems both raise :class:`AgentError`
(the latter chained to the ``OSError``), so a scenario has one thing to catch.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from lab.addresses import AGENT_PORT
from lab.server.jsonlines import request_line
from lab.toolerrors import SetupError

DEFAULT_PORT = AGENT_PORT
MAX_REPLY = 64 * 1024 * 1024  # a capture comes back base64-encoded in one line


class AgentError(SetupError):
    """The agent refused or failed a request (its message), or could not be reached."""


class AgentClient:
    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AgentClient({self.host!r}, {self.port})"

    # Transport -----------------------------------------------------------------
    def request(self, op: str, *, extra_time: float = 0.0, **fields: Any) -> dict[str, Any]:
        """Send one op; returns the reply object (``ok`` is true) or raises :class:`AgentError`.

        ``extra_time`` lengthens the reply deadline for ops that wait on purpose.
        Fields whose value is None are left out, so the agent applies its defaults.
        """
        message = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
        where = f"agent {self.host}:{self.port}"
        try:
            line = request_line(self.host, self.port, message, self.timeout, reply_timeout=self.timeout + extra_time,
                                max_reply=MAX_REPLY, closed=_closed_early)
        except OSError as exc:
            raise AgentError(f"{where}: {op}: {type(exc).__name__}: {exc}") from exc
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise AgentError(f"{where}: {op}: reply is not JSON: {line[:200]!r}") from exc
        if not isinstance(reply, dict) or "ok" not in reply:
            raise AgentError(f"{where}: {op}: reply has no \"ok\" field: {line[:200]!r}")
        if reply["ok"] is not True:
            raise AgentError(str(reply.get("error", "the agent said no and gave no reason")))
        return reply

    # Ops -----------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def block(self, port: int | None = None, *, peer_port: int | None = None, direction: str = "both",
              syn_only: bool = False, action: str = "drop", probability: float | None = None) -> list[str]:
        """Add iptables rules; returns their ids. ``port`` is this side's, ``peer_port`` the remote side's."""
        reply = self.request("block", port=port, peer_port=peer_port, direction=direction, syn_only=syn_only,
                             action=action, probability=probability)
        return list(reply["ids"])

    def dns(self, action: str, *, address: str = "127.0.0.11") -> list[str]:
        """Drop or reject the resolver's queries, or count them ("count"); returns the rules' ids."""
        return list(self.request("dns", action=action, address=address)["ids"])

    def unblock(self) -> list[str]:
        return list(self.request("unblock")["removed"])

    def counters(self) -> list[dict[str, Any]]:
        """One entry per lab rule: id, packets, bytes, target (and hook/match/action when known)."""
        return list(self.request("counters")["rules"])

    # The router's path ops (lab/inlab/agent/routerops.py) ------------------------------------------
    def route(self) -> dict[str, Any]:
        """The router's links, its backend address and the server behind it."""
        return {k: v for k, v in self.request("route").items() if k != "ok"}

    def mangle(self, kind: str, port: int, **fields: Any) -> dict[str, Any]:
        """One NFQUEUE packet fault (duplicate, reorder, delay, corrupt) on ``port``'s segments."""
        return {k: v for k, v in self.request("mangle", kind=kind, port=port, **fields).items() if k != "ok"}

    def mangle_counters(self) -> dict[str, int]:
        """What the packet handler did so far (or its final counts once reset)."""
        return dict(self.request("mangle_counters")["counters"])

    def idle_expiry(self, port: int, established: int) -> dict[str, Any]:
        """New connections to ``port`` are forgotten after ``established`` idle seconds, then dropped."""
        return {k: v for k, v in self.request("idle_expiry", port=port, established=established).items() if k != "ok"}

    def conntrack(self, port: int) -> list[dict[str, Any]]:
        """The router's conntrack entries for ``port``: state, seconds left, original tuple, flags."""
        return list(self.request("conntrack", port=port)["entries"])

    def path_counters(self) -> dict[str, int]:
        """Packets the path's own rules dropped: ``idle_drops`` (forgotten connections), ``frag_needed_dropped``."""
        reply = self.request("path_counters")
        return {"idle_drops": int(reply["idle_drops"]), "frag_needed_dropped": int(reply["frag_needed_dropped"])}

    def link_mtu(self, mtu: int, *, black_hole: bool = True, clamp_mss: bool = False) -> dict[str, Any]:
        """A smaller MTU on the router's backend link; ICMP "fragmentation needed" dropped, or MSS clamped."""
        reply = self.request("link_mtu", mtu=mtu, black_hole=black_hole, clamp_mss=clamp_mss)
        return {k: v for k, v in reply.items() if k != "ok"}

    def signal(self, target: str, signal: str, peer_port: int | None = None) -> list[int]:
        """Signal ``target``'s processes; with ``peer_port``, only its forked child holding that connection."""
        return list(self.request("signal", target=target, signal=signal, peer_port=peer_port)["pids"])

    def processes(self, sockets: bool = False) -> list[dict[str, Any]]:
        """The lab's processes; ``sockets=True`` adds each one's TCP sockets (from /proc/PID/fd)."""
        return list(self.request("processes", sockets=sockets or None)["processes"])

    def socket_rows(self, port: int | None = None) -> list[dict[str, Any]]:
        """The namespace's /proc/net/tcp rows, described for people (local, remote, state name, queues), by port."""
        return list(self.request("socket_rows", port=port)["rows"])

    def bind(self, port: int, binder: str) -> dict[str, Any]:
        """Bind (and listen on) 0.0.0.0:``port`` in the agent's namespace with one of
        lab.server.binding.BINDERS, then close: ``bound``, ``errno``, ``took_s`` and the table before."""
        reply = self.request("bind", port=port, binder=binder)
        return {k: v for k, v in reply.items() if k != "ok"}

    def wait_process(self, target: str, state: str, timeout: float = 10.0, not_pid: int | None = None) -> int | None:
        """Wait (in the agent) until ``target`` is running/stopped/gone/new; returns its pid (None for gone)."""
        reply = self.request("wait_process", extra_time=timeout, target=target, state=state, timeout=timeout,
                             not_pid=not_pid)
        return reply["pid"]

    def capture_start(self, name: str, filter: str = "tcp", side: str | None = None) -> dict[str, Any]:  # noqa: A002
        """``side``: on the router, which link ("lab" or "backend"); None elsewhere."""
        extra = {"side": side} if side is not None else {}
        return self.request("capture_start", extra_time=10.0, name=name, filter=filter, **extra)

    def capture_stop(self, name: str) -> bytes:
        """Stop a capture and return the pcap file's bytes."""
        return self.capture_stop_counted(name)[0]

    def capture_stop_counted(self, name: str) -> tuple[bytes, list[str]]:
        """Stop a capture: the pcap file's bytes, and tcpdump's closing count lines ("N packets dropped by kernel")."""
        reply = self.request("capture_stop", extra_time=15.0, name=name)
        return base64.b64decode(reply["pcap"]), [str(line) for line in reply.get("tcpdump") or []]

    def tcp_stats(self) -> dict[str, dict[str, int]]:
        """``{"tcp": {...}, "tcp_ext": {...}}``: the namespace's /proc/net/snmp and /proc/net/netstat counters."""
        reply = self.request("tcp_stats")
        return {"tcp": reply["tcp"], "tcp_ext": reply["tcp_ext"]}

    def tcp_table(self, port: int | None = None) -> list[Any]:
        """The namespace's /proc/net/tcp as lab.inlab.tcptable.Row values (only ``port``'s if given)."""
        from lab.inlab.tcptable import Row

        return [Row.from_list(item) for item in self.request("tcp_table", port=port)["rows"]]

    def exhaust_ports(self, target: tuple[str, int], *, spare: int = 4, timeout: float = 20.0) -> dict[str, Any]:
        """Claim every ephemeral port of the agent's namespace but ``spare``, then use those for ``target``.

        From then on a connect() to ``target`` from that namespace fails with EADDRNOTAVAIL; other
        destinations still work. Returns what was done (range, claimed, connections, ...).
        """
        reply = self.request("exhaust_ports", extra_time=timeout + 5.0, target=[target[0], target[1]],
                             spare=spare, timeout=timeout)
        return {k: v for k, v in reply.items() if k != "ok"}

    def release_ports(self) -> dict[str, Any]:
        """Close everything exhaust_ports holds; returns the counts released."""
        return dict(self.request("release_ports", extra_time=15.0)["released"])

    def reset(self) -> dict[str, Any]:
        """Undo every fault: rules, stopped servers, a held supervisor, running captures (and sandbox targets)."""
        return self.request("reset", extra_time=30.0)

    def sandbox_allow(self, targets: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """Let graded code reach exactly these (IPv4 address, TCP port) targets; ``[]`` allows none again.

        The client-agent only. Replaces the previous list. Returns ``uid``, ``targets``, ``rules``
        (LAB-SANDBOX as ``iptables -S`` lists it), ``rules6`` and ``ipv6`` ("dropped", or why not).
        """
        reply = self.request("sandbox_allow", targets=[[address, port] for address, port in targets])
        return {k: v for k, v in reply.items() if k != "ok"}


def _closed_early(received: int) -> str:
    return f"the agent closed the connection after {received} bytes without a full reply"
