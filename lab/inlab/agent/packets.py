"""IPv4 and TCP on bytes: parse a queued packet, compute and check its checksums, corrupt a payload byte.

Sans-IO: everything takes and returns ``bytes``. :func:`parse_tcp` reads an IPv4 packet carrying
TCP (what NFQUEUE hands the handler with ``NFQNL_COPY_PACKET``: the IP header onwards) into a
:class:`TcpPacket`; bytes past the IP total length (link-layer padding) are kept in the packet
but belong to neither header nor payload. :func:`ipv4_checksum` and :func:`tcp_checksum` are
the RFC 1071 one's-complement sums (the TCP one over the RFC 793 pseudo-header).

The two corruptions of :func:`corrupt_payload` are the two ways a flipped bit can travel:

* ``fix_checksum=False``: the byte changes and the TCP checksum stays as it was, so it is wrong;
  the receiving TCP counts ``InCsumErrors``, drops the segment, and the sender retransmits it
  intact. Nothing reaches the application.
* ``fix_checksum=True``: the checksum is recomputed over the corrupt byte, as a broken middlebox
  that rewrites packets would; the receiver accepts it and the application reads the wrong byte.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from lab.toolerrors import UsageError

IPPROTO_TCP = 6

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
FLAG_NAMES = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))

IPV4 = struct.Struct("!BBHHHBBH4s4s")     # ver/ihl, tos, total length, id, flags/frag, ttl, proto, csum, src, dst
TCP = struct.Struct("!HHIIBBHHH")          # sport, dport, seq, ack, data offset, flags, window, csum, urgent
IP_CHECKSUM_OFFSET = 10
TCP_CHECKSUM_OFFSET = 16


class PacketError(UsageError, ValueError):
    """Bytes that are not the IPv4/TCP packet they were taken for; the message says what is wrong."""


@dataclass(frozen=True)
class TcpPacket:
    """An IPv4 packet with a TCP segment: the fields a path fault matches on, and where the payload is."""

    src: str
    dst: str
    ttl: int
    ip_id: int
    ip_header_length: int
    total_length: int         # the IP total length: header, TCP header and payload, no padding
    ip_checksum: int
    src_port: int
    dst_port: int
    seq: int
    ack: int
    tcp_header_length: int
    flags: int
    window: int
    tcp_checksum: int
    payload_offset: int       # from the start of the IP header
    payload_length: int

    @property
    def tcp_offset(self) -> int:
        return self.ip_header_length

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    @property
    def is_control(self) -> bool:
        """A SYN, FIN or RST that carries no data: what path faults leave alone unless asked."""
        return bool(self.flags & (SYN | FIN | RST)) and self.payload_length == 0

    @property
    def flag_text(self) -> str:
        """tcpdump's spelling of the flags: ``S``, ``S.``, ``P.``, ``F.``, ``R``..."""
        return "".join(name for bit, name in FLAG_NAMES if self.flags & bit) or "none"

    def payload(self, packet: bytes) -> bytes:
        return packet[self.payload_offset:self.payload_offset + self.payload_length]


def parse_tcp(packet: bytes) -> TcpPacket:
    """Parse an IPv4 packet carrying TCP. Raises :class:`PacketError` for anything else (IPv6, UDP, a
    fragment other than the first... ) or for lengths that do not fit the bytes."""
    if len(packet) < IPV4.size:
        raise PacketError(f"{len(packet)} bytes are too few for an IPv4 header (20 at least)")
    ver_ihl, _tos, total, ip_id, frag, ttl, proto, ip_csum, src, dst = IPV4.unpack_from(packet)
    if ver_ihl >> 4 != 4:
        raise PacketError(f"IP version {ver_ihl >> 4}, only IPv4 is parsed")
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < IPV4.size:
        raise PacketError(f"IPv4 header length {ihl} is under the minimum 20")
    if not ihl <= total <= len(packet):
        raise PacketError(f"IPv4 total length {total} does not fit: header {ihl}, {len(packet)} bytes at hand")
    if proto != IPPROTO_TCP:
        raise PacketError(f"IP protocol {proto}, not TCP ({IPPROTO_TCP})")
    if frag & 0x1FFF:
        raise PacketError(f"a fragment at offset {(frag & 0x1FFF) * 8} has no TCP header")
    if total - ihl < TCP.size:
        raise PacketError(f"{total - ihl} bytes after the IP header are too few for a TCP header (20 at least)")
    sport, dport, seq, ack, offset_byte, flags, window, tcp_csum, _urgent = TCP.unpack_from(packet, ihl)
    thl = (offset_byte >> 4) * 4
    if not TCP.size <= thl <= total - ihl:
        raise PacketError(f"TCP header length {thl} does not fit: 20 at least, {total - ihl} bytes of segment")
    return TcpPacket(
        src=str(ipaddress.IPv4Address(src)), dst=str(ipaddress.IPv4Address(dst)), ttl=ttl, ip_id=ip_id,
        ip_header_length=ihl, total_length=total, ip_checksum=ip_csum, src_port=sport, dst_port=dport,
        seq=seq, ack=ack, tcp_header_length=thl, flags=flags, window=window, tcp_checksum=tcp_csum,
        payload_offset=ihl + thl, payload_length=total - ihl - thl)


# --------------------------------------------------------------------------- checksums

def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's-complement sum of 16-bit big-endian words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_checksum(packet: bytes) -> int:
    """The header checksum the IPv4 header of ``packet`` should carry (its own field taken as 0)."""
    ihl = (packet[0] & 0x0F) * 4
    header = bytearray(packet[:ihl])
    header[IP_CHECKSUM_OFFSET:IP_CHECKSUM_OFFSET + 2] = b"\0\0"
    return internet_checksum(bytes(header))


def tcp_checksum(packet: bytes) -> int:
    """The checksum the TCP segment of ``packet`` should carry: over the pseudo-header (source,
    destination, zero, protocol 6, TCP length) and the segment with its checksum field taken as 0."""
    info = parse_tcp(packet)
    segment = bytearray(packet[info.tcp_offset:info.total_length])
    segment[TCP_CHECKSUM_OFFSET:TCP_CHECKSUM_OFFSET + 2] = b"\0\0"
    pseudo = packet[12:20] + struct.pack("!BBH", 0, IPPROTO_TCP, len(segment))
    return internet_checksum(pseudo + bytes(segment))


def checksums_ok(packet: bytes) -> tuple[bool, bool]:
    """(IPv4 header checksum right, TCP checksum right) for ``packet`` as it is."""
    info = parse_tcp(packet)
    return info.ip_checksum == ipv4_checksum(packet), info.tcp_checksum == tcp_checksum(packet)


def with_checksums(packet: bytes) -> bytes:
    """``packet`` with both checksums recomputed (the bytes past the IP total length kept)."""
    info = parse_tcp(packet)
    out = bytearray(packet)
    struct.pack_into("!H", out, IP_CHECKSUM_OFFSET, ipv4_checksum(packet))
    struct.pack_into("!H", out, info.tcp_offset + TCP_CHECKSUM_OFFSET, tcp_checksum(bytes(out)))
    return bytes(out)


def corrupt_payload(packet: bytes, offset: int = 0, mask: int = 0x01, *, fix_checksum: bool) -> bytes:
    """``packet`` with payload byte ``offset`` XORed with ``mask``; the TCP checksum recomputed only if
    ``fix_checksum`` (see the module's docstring for what each does on the wire)."""
    info = parse_tcp(packet)
    if not 1 <= mask <= 0xFF:
        raise ValueError(f"mask {mask!r} must flip at least one bit of a byte: 1..255")
    if not 0 <= offset < info.payload_length:
        raise ValueError(f"payload offset {offset!r} is outside the segment's {info.payload_length}-byte payload")
    out = bytearray(packet)
    out[info.payload_offset + offset] ^= mask
    if fix_checksum:
        struct.pack_into("!H", out, info.tcp_offset + TCP_CHECKSUM_OFFSET, tcp_checksum(bytes(out)))
    return bytes(out)


def build_tcp(src: str, dst: str, src_port: int, dst_port: int, *, seq: int = 0, ack: int = 0,
              flags: int = ACK | PSH, window: int = 65535, payload: bytes = b"", ttl: int = 64,
              ip_id: int = 0, options: bytes = b"") -> bytes:
    """An IPv4/TCP packet with correct checksums (DF set), for tests and for injecting by hand."""
    if len(options) % 4:
        raise ValueError(f"TCP options must be padded to 4 bytes, got {len(options)}")
    thl = TCP.size + len(options)
    total = IPV4.size + thl + len(payload)
    ip = IPV4.pack(0x45, 0, total, ip_id, 0x4000, ttl, IPPROTO_TCP, 0,
                   ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    tcp = TCP.pack(src_port, dst_port, seq, ack, (thl // 4) << 4, flags, window, 0, 0) + options
    return with_checksums(ip + tcp + payload)
