"""One TCP connection's raw segments, per side and in time: what a proof measures a fault's magnitude with.

:mod:`lab.evidence.tcp` tells each connection's story in totals. A proof that measures how
much a fault did needs the segments themselves: the delay from a request to its reply, the
size of each piece a proxy wrote, the byte offset at which a stream stopped, whether a FIN
came before or after the other side's. :func:`connections` groups a capture's segments
(:mod:`lab.evidence.pcap`) by connection; a :class:`Conn` answers those questions, each
within a :class:`~lab.evidence.anchor.Window` of wall-clock time.

Through Toxiproxy one conversation is two connections. The client's capture holds the first
leg (the subjects' own ports → toxiproxy:PORT). The server's capture holds the second,
Toxiproxy's own connection to server:PORT, from Toxiproxy's address and an ephemeral port
nobody chose. Toxiproxy dials the server as soon as it has accepted a client, so each second
leg opens just after its first; :func:`pair` matches them by that::

    subjects = connections(client_pcap, server_port=7000, client_ports=ctx.client_ports())
    upstream = proxy_legs(server_pcap, subjects, server_port=7000)   # from Toxiproxy's address
    for conn, leg in pair(subjects, upstream): ...

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Literal

from lab.addresses import TOXIPROXY_PORT_RANGE
from lab.evidence.anchor import Window
from lab.evidence.pcap import ACK, FIN, RST, SYN, Endpoint, PcapFile, Segment

__all__ = ["Side", "Conn", "connections", "proxy_host", "proxy_legs", "pair", "exchanges", "retransmitted",
           "CLIENT", "SERVER"]

Side = Literal["client", "server"]
CLIENT: Side = "client"
SERVER: Side = "server"
_MOD = 1 << 32


def _after(a: int, b: int) -> bool:
    """Sequence number ``a`` is at or after ``b`` (RFC 793 arithmetic, mod 2**32)."""
    return (a - b) % _MOD < (1 << 31)


@dataclasses.dataclass(eq=False)     # one connection is itself, not any other with the same segments
class Conn:
    """One connection as one capture saw it; ``client`` is the side that is not on the server port."""

    client: Endpoint
    server: Endpoint
    segments: list[Segment] = dataclasses.field(default_factory=list)   # in time order

    def __str__(self) -> str:
        return f"{self.client}→{self.server}"

    def _end(self, side: Side) -> Endpoint:
        return self.client if side == CLIENT else self.server

    @property
    def opened(self) -> float | None:
        """When the client's SYN was seen (wall-clock seconds), if it was."""
        syn = next((s for s in self.segments if s.src == self.client and s.has(SYN) and not s.has(ACK)), None)
        return None if syn is None else syn.time_ns / 1e9

    def sent(self, side: Side, window: Window = Window(), *, flags: int = 0, data: bool | None = None) -> list[Segment]:
        """What ``side`` sent in ``window``: every segment, those carrying all ``flags``, with or without payload."""
        src = self._end(side)
        return [s for s in self.segments if s.src == src and window.holds(s)
                and (not flags or s.flags & flags == flags)
                and (data is None or (s.payload_len > 0) == data)]

    def first(self, side: Side, flag: int, window: Window = Window()) -> Segment | None:
        """The earliest segment from ``side`` carrying ``flag`` in ``window``."""
        return next(iter(self.sent(side, window, flags=flag)), None)

    def time_of(self, side: Side, flag: int, window: Window = Window()) -> float | None:
        found = self.first(side, flag, window)
        return None if found is None else found.time_ns / 1e9

    def isn(self, side: Side) -> int | None:
        """``side``'s initial sequence number, when its SYN (or SYN-ACK) was captured."""
        syn = self.first(side, SYN)
        return None if syn is None else syn.seq

    def offset(self, side: Side, seq: int) -> int | None:
        """``seq`` as a byte offset into ``side``'s stream (its first data byte is 0); None without its SYN."""
        isn = self.isn(side)
        return None if isn is None else (seq - isn - 1) % _MOD

    def stream_end(self, side: Side, window: Window = Window()) -> int | None:
        """How far ``side``'s data reached in ``window``: the offset just past its last byte (0: no data)."""
        ends = [self.offset(side, s.seq + s.payload_len) for s in self.sent(side, window, data=True)]
        if any(e is None for e in ends):
            return None
        return max((e for e in ends if e is not None), default=0)

    def acked(self, segment: Segment) -> bool:
        """Did the other side later acknowledge every byte of ``segment`` (its payload, SYN and FIN)?"""
        end = segment.seq + segment.payload_len + segment.has(SYN) + segment.has(FIN)
        return any(s.dst == segment.src and s.has(ACK) and not s.has(RST) and s.time_ns >= segment.time_ns
                   and _after(s.ack, end) for s in self.segments)

    def gaps(self, side: Side, window: Window = Window()) -> list[float]:
        """Seconds between consecutive data segments from ``side`` in ``window``."""
        times = [s.time_ns / 1e9 for s in self.sent(side, window, data=True)]
        return [b - a for a, b in zip(times, times[1:])]


def connections(pcap: PcapFile, *, server_port: int, client_ports: Collection[int] | None = None,
                client_host: str | None = None) -> list[Conn]:
    """The connections to ``server_port`` in a capture, in order of first segment.

    ``client_ports`` keeps the connections whose client used one of those local ports (the
    subjects', on the client's side); ``client_host`` those whose client is that address
    (Toxiproxy's, on the server's side). A new SYN on a finished 4-tuple starts a new connection.
    """
    found: list[Conn] = []
    open_by_pair: dict[tuple[Endpoint, Endpoint], Conn] = {}
    for s in sorted(pcap.segments, key=lambda seg: seg.time_ns):
        if s.dst.port == server_port:
            client, server = s.src, s.dst
        elif s.src.port == server_port:
            client, server = s.dst, s.src
        else:
            continue
        if client_ports is not None and client.port not in client_ports:
            continue
        if client_host is not None and client.host != client_host:
            continue
        conn = open_by_pair.get((client, server))
        fresh_syn = s.src == client and s.has(SYN) and not s.has(ACK)
        if conn is None or (fresh_syn and conn.isn(CLIENT) not in (None, s.seq)):
            conn = Conn(client, server)
            open_by_pair[(client, server)] = conn
            found.append(conn)
        conn.segments.append(s)
    return found


def proxy_host(conns: Iterable[Conn]) -> str | None:
    """The address the client's connections went to: Toxiproxy's, seen from the client's side."""
    hosts = {c.server.host for c in conns}
    return hosts.pop() if len(hosts) == 1 else None


def proxy_legs(pcap: PcapFile, subjects: Iterable[Conn], *, server_port: int) -> list[Conn]:
    """In a server-side capture, the proxy's own connections to ``server_port``.

    Those from the address the subjects connected to (none when that is not one address),
    where the capture sees Toxiproxy's own address. Behind the router's NAT the server sees
    every connection come from the router's address, with the port its opener chose: then the
    proxy's are those from a port of Toxiproxy's ephemeral range, which no other container uses
    (lab/addresses.py). :func:`pair` then matches each to its subject by when it opened.
    """
    host = proxy_host(subjects)
    if host is None:
        return []
    legs = connections(pcap, server_port=server_port, client_host=host)
    if legs:
        return legs
    low, high = TOXIPROXY_PORT_RANGE
    return [c for c in connections(pcap, server_port=server_port) if low <= c.client.port <= high]


def pair(first_legs: Iterable[Conn], second_legs: Iterable[Conn], *,
         within: float = 1.0) -> list[tuple[Conn, Conn | None]]:
    """Each first leg with the second leg the proxy opened for it (or None).

    The proxy accepts the client, then dials the server: the second leg's SYN follows the
    first's within ``within`` seconds. Legs are matched in the order they opened, each once.
    """
    seconds = sorted((c for c in second_legs if c.opened is not None), key=lambda c: c.opened or 0.0)
    taken: set[int] = set()
    out = []
    for conn in sorted(first_legs, key=lambda c: c.opened or 0.0):
        match = None
        if conn.opened is not None:
            for i, leg in enumerate(seconds):
                opened = leg.opened or 0.0
                if i not in taken and conn.opened - 0.001 <= opened <= conn.opened + within:
                    match = leg
                    taken.add(i)
                    break
        out.append((conn, match))
    return out


def exchanges(conn: Conn, window: Window = Window()) -> list[tuple[float, float]]:
    """Each request and its reply in ``window``: (when the request's first data segment was seen,
    when the reply's first data segment was), wall-clock seconds, where the capture was taken.

    A request starts with the client's first data segment after the previous reply began;
    more client data while it waits belongs to the same request, more reply data to the same
    reply. On the client's side that is the round trip the client saw; on the server's side,
    how long the server took.
    """
    out = []
    pending: float | None = None
    for s in conn.segments:
        if s.payload_len == 0 or not window.holds(s):
            continue
        t = s.time_ns / 1e9
        if s.src == conn.client and pending is None:
            pending = t
        elif s.src == conn.server and pending is not None:
            out.append((pending, t))
            pending = None
    return out


def retransmitted(conn: Conn, side: Side, window: Window = Window()) -> list[Segment]:
    """``side``'s data segments in ``window`` that carried bytes it had already sent (as far as this capture saw)."""
    out: list[Segment] = []
    reached: int | None = None      # the sequence number just past the furthest byte sent so far
    for s in conn.sent(side, data=True):
        end = (s.seq + s.payload_len) % _MOD
        if reached is not None and not _after(s.seq, reached) and window.holds(s):
            out.append(s)
        if reached is None or _after(end, reached):
            reached = end
    return out
