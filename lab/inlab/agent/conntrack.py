"""The router's connection tracking: read its table, give TCP a short timeout by name, delete one entry.

* :func:`parse_line` / :func:`parse_table` read ``/proc/net/nf_conntrack`` (one line per entry:
  protocol, seconds left, TCP state, the original and reply tuples, ``[ASSURED]``-style flags,
  ``mark=`` ...) into :class:`Entry`; :func:`read_table` reads this namespace's file and
  :func:`entries_for_port` picks a port's entries.
* :func:`create_timeout_policy` / :func:`delete_timeout_policy` / :func:`get_timeout_policy`
  speak nfnetlink cttimeout (``NFNL_SUBSYS_CTNETLINK_TIMEOUT``): a named TCP timeout policy that
  ``iptables -t raw -A PREROUTING -p tcp --dport 7000 -j CT --timeout NAME`` attaches to new
  connections, so the router forgets an idle established connection after, say, 5 s (the
  stateful middlebox that silently drops a connection's state).
* :func:`delete_entry` speaks ctnetlink (``IPCTNL_MSG_CT_DELETE``): forget one connection now.

The netlink messages are built by the ``encode_*`` functions (sans-IO, tested on bytes); the
rest opens one :class:`~lab.inlab.agent.netlink.NetlinkSocket` per call. Numbers are from
``include/uapi/linux/netfilter/nfnetlink_cttimeout.h`` and ``nfnetlink_conntrack.h``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lab.inlab.agent.netlink import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NetlinkSocket,
    attr_be16,
    attr_be32,
    attr_string,
    attr_u8,
    attrs_by_type,
    decode_attrs,
    decode_nfgen,
    encode_attr,
    encode_nested,
    encode_nfgen,
)

PROC_PATH = "/proc/net/nf_conntrack"

# --------------------------------------------------------------------------- /proc/net/nf_conntrack


@dataclass(frozen=True)
class Tuple:
    """One direction of a connection, as the table prints it (counters only with nf_conntrack_acct=1)."""

    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    packets: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class Entry:
    """One line of ``/proc/net/nf_conntrack``."""

    l3: str                   # "ipv4", "ipv6"
    l4: str                   # "tcp", "udp", "icmp", ...
    l4_number: int
    timeout: int              # seconds left before the entry is dropped (if no packet refreshes it)
    state: str | None         # TCP's conntrack state (ESTABLISHED, TIME_WAIT, ...); None for UDP/ICMP
    original: Tuple
    reply: Tuple
    flags: frozenset[str] = frozenset()     # ASSURED, UNREPLIED, OFFLOAD, HW_OFFLOAD
    mark: int = 0
    zone: int = 0
    use: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)   # any other key=value (secctx, labels...)

    @property
    def ports(self) -> tuple[int | None, int | None]:
        return self.original.sport, self.original.dport


_FLAG = re.compile(r"^\[([A-Z_]+)\]$")
_TUPLE_KEYS = ("src", "dst", "sport", "dport", "packets", "bytes")


def parse_line(line: str) -> Entry:
    """One table line. Raises ValueError saying which part is not what the kernel prints."""
    words = line.split()
    if len(words) < 5:
        raise ValueError(f"a conntrack line has at least 5 fields (l3 name, number, l4 name, number, "
                         f"timeout); got {len(words)}: {line!r}")
    l3, _l3num, l4, l4num, timeout, *rest = words
    try:
        l4_number, seconds = int(l4num), int(timeout)
    except ValueError:
        raise ValueError(f"conntrack line's protocol number {l4num!r} and timeout {timeout!r} must be "
                         f"integers: {line!r}") from None
    state = None
    if rest and "=" not in rest[0] and not _FLAG.match(rest[0]):
        state = rest.pop(0)
    tuples: list[dict[str, str]] = [{}, {}]
    flags: set[str] = set()
    extra: dict[str, str] = {}
    which = -1
    for word in rest:
        flag = _FLAG.match(word)
        if flag:
            flags.add(flag.group(1))
            continue
        key, eq, value = word.partition("=")
        if not eq:
            raise ValueError(f"conntrack line has {word!r} where key=value or [FLAG] was expected: {line!r}")
        if key == "src":
            which += 1
            if which > 1:
                raise ValueError(f"conntrack line has more than two tuples: {line!r}")
        if key in _TUPLE_KEYS and which >= 0 and key not in tuples[which]:
            tuples[which][key] = value
        else:
            extra[key] = value
    if which != 1:
        raise ValueError(f"conntrack line has {which + 1} tuple(s) (src=... dst=...), expected 2: {line!r}")
    original, reply = (_tuple(t, line) for t in tuples)
    numbers = {k: int(extra.pop(k)) for k in ("mark", "zone", "use") if k in extra}
    return Entry(l3=l3, l4=l4, l4_number=l4_number, timeout=seconds, state=state, original=original,
                 reply=reply, flags=frozenset(flags), mark=numbers.get("mark", 0), zone=numbers.get("zone", 0),
                 use=numbers.get("use", 0), extra=extra)


def _tuple(values: dict[str, str], line: str) -> Tuple:
    if "src" not in values or "dst" not in values:
        raise ValueError(f"conntrack tuple without src= and dst=: {line!r}")

    def number(key: str) -> int | None:
        return int(values[key]) if key in values else None

    return Tuple(values["src"], values["dst"], number("sport"), number("dport"), number("packets"),
                 number("bytes"))


def parse_table(text: str) -> list[Entry]:
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def read_table(path: str = PROC_PATH) -> list[Entry]:
    """This namespace's table ([] when conntrack is not active here, so the file is absent)."""
    try:
        with open(path) as f:
            return parse_table(f.read())
    except FileNotFoundError:
        return []


def entries_for_port(entries: Iterable[Entry], port: int, l4: str = "tcp") -> list[Entry]:
    """Entries whose original tuple has ``port`` as source or destination port."""
    return [e for e in entries if e.l4 == l4 and port in (e.original.sport, e.original.dport)]


# --------------------------------------------------------------------------- cttimeout

NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_CTNETLINK_TIMEOUT = 8

IPCTNL_MSG_TIMEOUT_NEW = 0
IPCTNL_MSG_TIMEOUT_GET = 1
IPCTNL_MSG_TIMEOUT_DELETE = 2

CTA_TIMEOUT_NAME = 1
CTA_TIMEOUT_L3PROTO = 2
CTA_TIMEOUT_L4PROTO = 3
CTA_TIMEOUT_DATA = 4
CTA_TIMEOUT_USE = 5

TCP_TIMEOUT_ATTRS = {    # enum ctattr_timeout_tcp
    "syn_sent": 1, "syn_recv": 2, "established": 3, "fin_wait": 4, "close_wait": 5, "last_ack": 6,
    "time_wait": 7, "close": 8, "syn_sent2": 9, "retrans": 10, "unack": 11,
}
NAME_MAX = 31            # CTNL_TIMEOUT_NAME_MAX is 32 with the NUL
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,31}$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"timeout policy name {name!r} must be 1..{NAME_MAX} characters of A-Z a-z 0-9 _ . -")
    return name


@dataclass(frozen=True)
class TcpTimeoutPolicy:
    """A named TCP timeout policy: seconds per conntrack TCP state; states left out keep their
    current defaults (the kernel copies nf_conntrack_tcp_timeout_* for them)."""

    name: str
    established: int
    others: Mapping[str, int] = field(default_factory=dict)   # e.g. {"time_wait": 5, "close_wait": 5}

    def __post_init__(self) -> None:
        _check_name(self.name)
        for state, seconds in {"established": self.established, **self.others}.items():
            if state not in TCP_TIMEOUT_ATTRS:
                raise ValueError(f"unknown TCP state {state!r}; accepted: {', '.join(TCP_TIMEOUT_ATTRS)}")
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 0x7FFFFFFF // 1000:
                raise ValueError(f"{state} timeout must be a whole number of seconds 1..2147483, not {seconds!r}")

    def timeouts(self) -> dict[str, int]:
        return {"established": self.established, **self.others}


def _timeout_type(subtype: int) -> int:
    return (NFNL_SUBSYS_CTNETLINK_TIMEOUT << 8) | subtype


def encode_timeout_new(policy: TcpTimeoutPolicy) -> bytes:
    """The payload of IPCTNL_MSG_TIMEOUT_NEW for ``policy`` (IPv4, TCP)."""
    data = [attr_be32(TCP_TIMEOUT_ATTRS[state], seconds) for state, seconds in sorted(
        policy.timeouts().items(), key=lambda kv: TCP_TIMEOUT_ATTRS[kv[0]])]
    return (encode_nfgen(socket.AF_UNSPEC) + attr_string(CTA_TIMEOUT_NAME, policy.name)
            + attr_be16(CTA_TIMEOUT_L3PROTO, socket.AF_INET) + attr_u8(CTA_TIMEOUT_L4PROTO, socket.IPPROTO_TCP)
            + encode_nested(CTA_TIMEOUT_DATA, data))


def encode_timeout_name(name: str) -> bytes:
    """The payload of IPCTNL_MSG_TIMEOUT_GET / _DELETE naming one policy."""
    return encode_nfgen(socket.AF_UNSPEC) + attr_string(CTA_TIMEOUT_NAME, _check_name(name))


@dataclass(frozen=True)
class TimeoutPolicyInfo:
    """A policy as the kernel reports it: every state's seconds, and how many rules/entries use it."""

    name: str
    l3proto: int
    l4proto: int
    timeouts: Mapping[str, int]
    use: int


def decode_timeout_policy(payload: bytes) -> TimeoutPolicyInfo:
    _, rest = decode_nfgen(payload)
    attrs = attrs_by_type(decode_attrs(rest))
    names = {number: state for state, number in TCP_TIMEOUT_ATTRS.items()}
    data = attrs[CTA_TIMEOUT_DATA].children() if CTA_TIMEOUT_DATA in attrs else []
    return TimeoutPolicyInfo(
        name=attrs[CTA_TIMEOUT_NAME].string(), l3proto=attrs[CTA_TIMEOUT_L3PROTO].be16(),
        l4proto=attrs[CTA_TIMEOUT_L4PROTO].u8(),
        timeouts={names.get(a.type, str(a.type)): a.be32() for a in data},
        use=attrs[CTA_TIMEOUT_USE].be32() if CTA_TIMEOUT_USE in attrs else 0)


def create_timeout_policy(policy: TcpTimeoutPolicy, *, replace: bool = False, timeout: float = 2.0) -> None:
    """Create ``policy`` in this namespace. Raises FileExistsError if the name exists and not ``replace``
    (with it, the existing policy's timeouts are updated); PermissionError without CAP_NET_ADMIN."""
    flags = NLM_F_CREATE | (0 if replace else NLM_F_EXCL)
    with NetlinkSocket(timeout=timeout) as nl:
        nl.request(_timeout_type(IPCTNL_MSG_TIMEOUT_NEW), flags, encode_timeout_new(policy),
                   what=f"creating conntrack timeout policy {policy.name!r}")


def get_timeout_policy(name: str, *, timeout: float = 2.0) -> TimeoutPolicyInfo:
    """Raises FileNotFoundError if there is no such policy."""
    with NetlinkSocket(timeout=timeout) as nl:
        replies = nl.request(_timeout_type(IPCTNL_MSG_TIMEOUT_GET), 0, encode_timeout_name(name),
                             what=f"reading conntrack timeout policy {name!r}")
    if not replies:
        raise ValueError(f"the kernel acknowledged reading timeout policy {name!r} but sent no policy")
    return decode_timeout_policy(replies[0].payload)


def delete_timeout_policy(name: str, *, timeout: float = 2.0) -> None:
    """Raises FileNotFoundError if there is no such policy, and OSError(EBUSY) while a rule or a
    tracked connection still uses it (delete the CT rule, then let the entries go, first)."""
    with NetlinkSocket(timeout=timeout) as nl:
        nl.request(_timeout_type(IPCTNL_MSG_TIMEOUT_DELETE), 0, encode_timeout_name(name),
                   what=f"deleting conntrack timeout policy {name!r}")


# --------------------------------------------------------------------------- ctnetlink: delete one entry

IPCTNL_MSG_CT_DELETE = 2
CTA_TUPLE_ORIG = 1
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3


def encode_ct_delete(src: str, dst: str, sport: int, dport: int, l4proto: int = socket.IPPROTO_TCP) -> bytes:
    """The payload of IPCTNL_MSG_CT_DELETE for the connection whose original tuple is this one."""
    for name, port in (("sport", sport), ("dport", dport)):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"{name} must be a port 1..65535, not {port!r}")
    try:
        src_ip, dst_ip = ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst)
    except ValueError as exc:
        raise ValueError(f"src and dst must be IPv4 addresses: {exc}") from None
    tuple_ip = encode_nested(CTA_TUPLE_IP, [encode_attr(CTA_IP_V4_SRC, src_ip.packed),
                                            encode_attr(CTA_IP_V4_DST, dst_ip.packed)])
    tuple_proto = encode_nested(CTA_TUPLE_PROTO, [attr_u8(CTA_PROTO_NUM, l4proto),
                                                  attr_be16(CTA_PROTO_SRC_PORT, sport),
                                                  attr_be16(CTA_PROTO_DST_PORT, dport)])
    return encode_nfgen(socket.AF_INET) + encode_nested(CTA_TUPLE_ORIG, [tuple_ip, tuple_proto])


def delete_entry(src: str, dst: str, sport: int, dport: int, *, timeout: float = 2.0) -> None:
    """Forget one TCP connection (its original tuple). Raises FileNotFoundError if it is not tracked."""
    with NetlinkSocket(timeout=timeout) as nl:
        nl.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, 0,
                   encode_ct_delete(src, dst, sport, dport),
                   what=f"deleting conntrack entry {src}:{sport} -> {dst}:{dport}")
