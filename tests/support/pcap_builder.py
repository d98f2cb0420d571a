"""Build classic pcap files in memory for the lab.evidence tests: no tcpdump, no network.

A :class:`Flow` plays one TCP conversation and keeps each side's next sequence
number, so a test reads like the exchange it describes::

    flow = Flow()
    flow.handshake()
    flow.send("c", b"x" * 100)          # client → server, seq/ack filled in
    flow.send("s", flags="A")           # the server's ACK
    flow.close()                        # FIN each way and the last ACK
    data = write_pcap(flow.packets)     # bytes of a .pcap, Ethernet, little-endian, µs

Headers are built with struct and are correct where the reader looks (lengths,
offsets, flags, addresses); the IPv4 header checksum is real, the TCP one is 0.
Addresses are loopback ones only.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

LINK_NULL, LINK_EN10MB, LINK_RAW, LINK_SLL, LINK_SLL2 = 0, 1, 101, 113, 276
MAGIC_MICRO, MAGIC_NANO = 0xA1B2C3D4, 0xA1B23C4D
START_NS = 1_700_000_000_000_000_000

_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


@dataclass
class Packet:
    time_ns: int
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    ack: int
    flags: str                  # letters from "FSRPA", e.g. "SA", "PA", "RA"
    window: int = 65535
    payload: bytes = b""


def flag_bits(flags: str) -> int:
    return sum(_FLAG_BITS[letter] for letter in set(flags))


class Flow:
    """One TCP conversation; "c" is the client, "s" the server. Times advance 1 ms per packet by default."""

    def __init__(self, client: tuple[str, int] = ("127.0.0.1", 40000),
                 server: tuple[str, int] = ("127.0.0.1", 7000), *,
                 client_isn: int = 1000, server_isn: int = 5000, start_ns: int = START_NS) -> None:
        self.ends = {"c": client, "s": server}
        self.nxt = {"c": client_isn, "s": server_isn}
        self.time_ns = start_ns
        self.packets: list[Packet] = []

    @staticmethod
    def other(side: str) -> str:
        return "s" if side == "c" else "c"

    def send(self, side: str, payload: bytes = b"", *, flags: str | None = None, seq: int | None = None,
             ack: int | None = None, window: int = 65535, dt_ns: int = 1_000_000) -> Packet:
        """Append one segment from ``side``; seq and ack default to the sides' next numbers."""
        if flags is None:
            flags = "PA" if payload else "A"
        self.time_ns += dt_ns
        seq = self.nxt[side] if seq is None else seq
        ack = self.nxt[self.other(side)] if ack is None else ack
        packet = Packet(self.time_ns, self.ends[side], self.ends[self.other(side)], seq & 0xFFFFFFFF,
                        ack & 0xFFFFFFFF if "A" in flags else 0, flags, window, payload)
        self.packets.append(packet)
        end = seq + len(payload) + ("S" in flags) + ("F" in flags)
        if "R" not in flags:
            self.nxt[side] = max(self.nxt[side], end)
        return packet

    def handshake(self) -> None:
        self.send("c", flags="S", ack=0)
        self.send("s", flags="SA")
        self.send("c", flags="A")

    def close(self, first: str = "c") -> None:
        self.send(first, flags="FA")
        self.send(self.other(first), flags="FA")
        self.send(first, flags="A")


# --------------------------------------------------------------------------- headers

def tcp_header(p: Packet) -> bytes:
    return struct.pack(">HHIIBBHHH", p.src[1], p.dst[1], p.seq, p.ack, 5 << 4, flag_bits(p.flags),
                       p.window, 0, 0) + p.payload


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_packet(p: Packet, *, proto: int = 6, body: bytes | None = None) -> bytes:
    body = tcp_header(p) if body is None else body
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0x4000, 64, proto, 0,
                         socket.inet_pton(socket.AF_INET, p.src[0]), socket.inet_pton(socket.AF_INET, p.dst[0]))
    header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
    return header + body


def ipv6_packet(p: Packet) -> bytes:
    body = tcp_header(p)
    return struct.pack(">IHBB16s16s", 6 << 28, len(body), 6, 64, socket.inet_pton(socket.AF_INET6, p.src[0]),
                       socket.inet_pton(socket.AF_INET6, p.dst[0])) + body


def ip_packet(p: Packet) -> bytes:
    return ipv6_packet(p) if ":" in p.src[0] else ipv4_packet(p)


def link_frame(link: int, ip: bytes, *, byte_order: str = "<", vlan: bool = False,
               sll_packet_type: int = 0, sll_hatype: int = 1) -> bytes:
    """Wrap an IP packet in the link-layer header of ``link``.

    ``sll_packet_type`` (0 HOST, 4 OUTGOING) and ``sll_hatype`` (1 ETHER, 772
    LOOPBACK) fill the cooked headers' fields.
    """
    ethertype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    if link == LINK_EN10MB:
        tag = struct.pack(">HH", 0x8100, 42) if vlan else b""
        return b"\x00" * 12 + tag + struct.pack(">H", ethertype) + ip
    if link == LINK_RAW:
        return ip
    if link == LINK_SLL:    # packet type, ARPHRD type, address length, address padded to 8, protocol
        return struct.pack(">HHH8sH", sll_packet_type, sll_hatype, 6, b"\x02" * 6, ethertype) + ip
    if link == LINK_SLL2:   # protocol, reserved, ifindex, ARPHRD type, packet type, address length, address
        return struct.pack(">HHIHBB8s", ethertype, 0, 2, sll_hatype, sll_packet_type, 6, b"\x02" * 6) + ip
    if link == LINK_NULL:   # address family in the writer's byte order
        return struct.pack(byte_order + "I", 2 if ethertype == 0x0800 else 30) + ip
    raise ValueError(f"no builder for link type {link}")


# --------------------------------------------------------------------------- file

def global_header(*, link: int = LINK_EN10MB, byte_order: str = "<", nanosecond: bool = False,
                  snaplen: int = 262144) -> bytes:
    magic = MAGIC_NANO if nanosecond else MAGIC_MICRO
    return struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link)


def record(frame: bytes, time_ns: int, *, byte_order: str = "<", nanosecond: bool = False,
           orig_len: int | None = None) -> bytes:
    sec, rest_ns = divmod(time_ns, 1_000_000_000)
    frac = rest_ns if nanosecond else rest_ns // 1000
    orig = len(frame) if orig_len is None else orig_len
    return struct.pack(byte_order + "IIII", sec, frac, len(frame), orig) + frame


def write_pcap(packets: Iterable[Packet], *, link: int = LINK_EN10MB, byte_order: str = "<",
               nanosecond: bool = False, vlan: bool = False) -> bytes:
    out = [global_header(link=link, byte_order=byte_order, nanosecond=nanosecond)]
    for p in packets:
        frame = link_frame(link, ip_packet(p), byte_order=byte_order, vlan=vlan)
        out.append(record(frame, p.time_ns, byte_order=byte_order, nanosecond=nanosecond))
    return b"".join(out)
