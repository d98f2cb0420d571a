"""Three network namespaces in a line, client - router - server, for the NFQUEUE and conntrack tests.

Root only. Everything is named ``sltest-<random>-...`` and removed by :meth:`Path3.close` (or the
``with`` block), even when the test fails::

    with Path3.create() as path:
        with path.enter("router"):          # this thread now lives in the router namespace
            queue = NfQueue(7)               # so the socket is bound there for good
        srv = path.socket("server")          # a socket created in the server namespace
        path.run("router", "iptables", "-A", "FORWARD", ...)

:meth:`Path3.enter` switches only the calling thread (``setns(2)`` through ctypes: Python 3.11 has
no ``os.setns``); a socket keeps the namespace it was created in, so sockets of all three
namespaces can live in one test process. Addresses: client 10.213.1.2, router 10.213.1.1 and
10.213.2.1, server 10.213.2.2; they exist only inside these namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
CLIENT_IP = "10.213.1.2"
ROUTER_CLIENT_SIDE = "10.213.1.1"
ROUTER_SERVER_SIDE = "10.213.2.1"
SERVER_IP = "10.213.2.2"
COMMAND_TIMEOUT = 10.0
PREFIX = "sltest-"

_libc = ctypes.CDLL(None, use_errno=True)


def is_root() -> bool:
    return os.geteuid() == 0


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def run(*argv: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command to completion with a deadline; a failure's message has its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass
class Path3:
    suffix: str
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, mtu: int = 1500) -> Path3:
        suffix = secrets.token_hex(3)
        path = cls(suffix, {role: f"{PREFIX}{suffix}-{role}" for role in ("client", "router", "server")})
        try:
            path._build(mtu)
        except BaseException:
            path.close()
            raise
        return path

    def _build(self, mtu: int) -> None:
        for name in self.names.values():
            run("ip", "netns", "add", name)
        c, r, s = self.names["client"], self.names["router"], self.names["server"]
        # Created straight inside the namespaces: no name ever exists in the host's namespace.
        run("ip", "link", "add", "c0", "netns", c, "mtu", str(mtu), "type", "veth", "peer", "name", "r1",
            "netns", r, "mtu", str(mtu))
        run("ip", "link", "add", "s0", "netns", s, "mtu", str(mtu), "type", "veth", "peer", "name", "r2",
            "netns", r, "mtu", str(mtu))
        for ns, dev, addr in ((c, "c0", CLIENT_IP), (r, "r1", ROUTER_CLIENT_SIDE), (r, "r2", ROUTER_SERVER_SIDE),
                              (s, "s0", SERVER_IP)):
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
        for ns in self.names.values():
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", c, "route", "add", "default", "via", ROUTER_CLIENT_SIDE)
        run("ip", "-n", s, "route", "add", "default", "via", ROUTER_SERVER_SIDE)
        self.sysctl("router", "net.ipv4.ip_forward", "1")

    def close(self) -> None:
        for name in self.names.values():
            run("ip", "netns", "del", name, check=False)

    def __enter__(self) -> Path3:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def exec(self, role: str, *argv: str, timeout: float = COMMAND_TIMEOUT,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.names[role], *argv, timeout=timeout, check=check)

    def sysctl(self, role: str, key: str, value: str) -> None:
        self.exec(role, "sysctl", "-q", "-w", f"{key}={value}")

    @contextlib.contextmanager
    def enter(self, role: str) -> Iterator[None]:
        """The calling thread in ``role``'s namespace for the block, then back where it was."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.names[role]}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def socket(self, role: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        with self.enter(role):
            return socket.socket(socket.AF_INET, kind)

    def read_proc(self, role: str, name: str) -> str:
        """``/proc/net/<name>`` as ``role``'s namespace has it (thread-self: this thread's namespace)."""
        with self.enter(role), open(f"/proc/thread-self/net/{name}") as f:
            return f.read()


def snmp_counters(text_snmp: str, text_netstat: str = "") -> dict[str, int]:
    """``/proc/net/snmp`` (and ``netstat``) as {"Tcp.InCsumErrors": 0, "TcpExt.DelayedACKLost": 3, ...}."""
    counters: dict[str, int] = {}
    for text in (text_snmp, text_netstat):
        lines = text.splitlines()
        for names, values in zip(lines[0::2], lines[1::2]):
            group, _, keys = names.partition(":")
            _, _, vals = values.partition(":")
            for key, val in zip(keys.split(), vals.split()):
                counters[f"{group}.{key}"] = int(val)
    return counters
