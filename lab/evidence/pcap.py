"""Reading a tcpdump capture: the classic pcap file format, and each frame decoded down to its TCP segment.

:func:`read_capture` turns a whole file held in memory into a :class:`PcapFile`:
its format facts and its TCP :class:`Segment` list, in capture order.
:mod:`lab.evidence.tcp` tells each connection's story from those segments.

What is read: classic libpcap files (not pcapng; ``tcpdump -w`` writes classic
pcap), either byte order, microsecond or nanosecond timestamps, link types
EN10MB (Ethernet, with VLAN tags), RAW, LINUX_SLL and LINUX_SLL2 (``-i any``),
plus BSD NULL/LOOP; IPv4 and IPv6; TCP, and IPv4 ICMP errors about TCP segments
(:class:`IcmpError`: what a router says when it cannot deliver). Other frames, IP
fragments and frames cut short by the snap length are counted in
``skipped`` and otherwise ignored. A file whose *structure* is broken (bad
magic, a truncated record, an unknown link type) raises :class:`CaptureError`,
whose message names the byte offset and the problem.

Standard library only: this runs inside the lab's minimal containers.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from lab.toolerrors import UsageError

__all__ = ["CaptureError", "Endpoint", "Segment", "IcmpError", "PcapFile", "read_capture", "LINK_NAMES",
           "FIN", "SYN", "RST", "PSH", "ACK"]


class CaptureError(UsageError, ValueError):
    """The file is not a readable classic pcap. ``offset`` is where reading failed.

    Also a ValueError, as it always was: callers and tests catch it as one.
    """

    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(f"offset {offset}: {problem}")
        self.problem = problem
        self.offset = offset


# --------------------------------------------------------------------------- file format

_GLOBAL_HEADER_SIZE = 24
_RECORD_HEADER_SIZE = 16
_MAGIC_MICRO = 0xA1B2C3D4
_MAGIC_NANO = 0xA1B23C4D
_MAGIC_PCAPNG = 0x0A0D0D0A

LINK_NULL, LINK_EN10MB, LINK_RAW, LINK_LOOP = 0, 1, 101, 108
LINK_LINUX_SLL, LINK_IPV4, LINK_IPV6, LINK_LINUX_SLL2 = 113, 228, 229, 276
LINK_NAMES = {
    LINK_NULL: "NULL", LINK_EN10MB: "EN10MB", LINK_RAW: "RAW", LINK_LOOP: "LOOP",
    LINK_LINUX_SLL: "LINUX_SLL", LINK_IPV4: "IPV4", LINK_IPV6: "IPV6", LINK_LINUX_SLL2: "LINUX_SLL2",
}

_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
_ARPHRD_LOOPBACK = 772
_PACKET_OUTGOING = 4

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Endpoint(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Segment:
    """One captured TCP segment; ``payload_len`` is what was on the wire, captured or not."""

    frame: int          # 0-based index of the frame in the file
    time_ns: int        # absolute capture time, nanoseconds since the epoch
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int
    flags: int
    window: int         # the raw 16-bit field, unscaled
    payload_len: int
    payload_crc: int = 0    # CRC-32 of the payload bytes captured: the same segment seen at two points
    #                         should carry the same bytes (a corrupting hop changes them)
    mss: int | None = None  # the MSS option of a SYN (what its sender offers to receive), else None

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


@dataclass(frozen=True)
class IcmpError:
    """One ICMPv4 error about a TCP segment: who sent it, its type and code, and the segment it is about.

    ``about_src`` and ``about_dst`` come from the copy of the offending packet's IP header and
    first 8 bytes that every ICMP error carries (RFC 792): enough for the TCP ports. ``mtu`` is
    the next-hop MTU of a "fragmentation needed" (type 3, code 4), else 0.
    """

    frame: int
    time_ns: int
    src: str
    dst: str
    type: int
    code: int
    about_src: Endpoint
    about_dst: Endpoint
    mtu: int = 0


ICMP_UNREACHABLE = 3
# Destination-unreachable codes (RFC 792, RFC 1812) by the names iptables' REJECT gives them.
ICMP_CODES = {"net-unreachable": 0, "host-unreachable": 1, "port-unreachable": 3, "fragmentation-needed": 4,
              "admin-prohibited": 13}


@dataclass
class PcapFile:
    """A parsed file: its format facts, its TCP segments, and what was skipped and why."""

    link_type: int
    nanosecond: bool
    byte_order: Literal["little", "big"]
    snaplen: int
    frames: int = 0
    first_ns: int | None = None     # time of the first and last frame, TCP or not
    last_ns: int | None = None
    segments: list[Segment] = field(default_factory=list)
    icmp: list[IcmpError] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class _Skip(Exception):
    """A frame we do not analyse (not TCP, fragment, cut by snaplen); the reason is the message."""


def read_capture(data: bytes) -> PcapFile:
    """Parse a whole classic pcap file held in memory. Raises :class:`CaptureError`."""
    order, nanosecond, link_type, snaplen = _read_global_header(data)
    capture = PcapFile(link_type, nanosecond, "little" if order == "<" else "big", snaplen)
    record = struct.Struct(order + "IIII")
    for time_ns, frame, wire_len in _records(data, record, nanosecond):
        if capture.first_ns is None:
            capture.first_ns = time_ns
        capture.last_ns = time_ns
        try:
            segment = _decode_frame(link_type, order, frame, wire_len, capture.frames, time_ns)
        except _Skip as why:
            capture.skipped[str(why)] += 1
        else:
            (capture.icmp if isinstance(segment, IcmpError) else capture.segments).append(segment)
        capture.frames += 1
    return capture


def _read_global_header(data: bytes) -> tuple[str, bool, int, int]:
    if len(data) < _GLOBAL_HEADER_SIZE:
        raise CaptureError(f"file is {len(data)} bytes, shorter than the 24-byte pcap header", 0)
    (magic_le,) = struct.unpack_from("<I", data, 0)
    (magic_be,) = struct.unpack_from(">I", data, 0)
    if magic_le in (_MAGIC_MICRO, _MAGIC_NANO):
        order, magic = "<", magic_le
    elif magic_be in (_MAGIC_MICRO, _MAGIC_NANO):
        order, magic = ">", magic_be
    elif magic_be == _MAGIC_PCAPNG:
        raise CaptureError("this is a pcapng file; write classic pcap (tcpdump -w does) "
                           "or convert it: editcap -F pcap in.pcapng out.pcap", 0)
    else:
        raise CaptureError(f"bad magic 0x{magic_be:08x}: not a pcap file", 0)
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", data, 4)
    if major != 2:
        raise CaptureError(f"unsupported pcap version {major}.{minor} (expected 2.x)", 4)
    link_type = network & 0xFFFF   # the upper bits may carry FCS information
    if link_type not in LINK_NAMES:
        raise CaptureError(f"unsupported link type {link_type}; readable: "
                           + ", ".join(f"{name}={code}" for code, name in sorted(LINK_NAMES.items())), 20)
    return order, magic == _MAGIC_NANO, link_type, snaplen


def _records(data: bytes, record: struct.Struct, nanosecond: bool) -> Iterator[tuple[int, bytes, int]]:
    """Yield (time_ns, captured bytes, original length) for each record."""
    offset, end = _GLOBAL_HEADER_SIZE, len(data)
    frac_ns = 1 if nanosecond else 1000
    while offset < end:
        if end - offset < _RECORD_HEADER_SIZE:
            raise CaptureError(f"truncated record header: {end - offset} of 16 bytes", offset)
        sec, frac, incl_len, orig_len = record.unpack_from(data, offset)
        if frac >= 1_000_000_000 // frac_ns:
            raise CaptureError(f"bad timestamp: fraction {frac} is not below one second", offset + 4)
        body = offset + _RECORD_HEADER_SIZE
        if incl_len > end - body:
            raise CaptureError(f"truncated record: header says {incl_len} captured bytes, "
                               f"{end - body} remain in the file", offset)
        yield sec * 1_000_000_000 + frac * frac_ns, data[body:body + incl_len], max(orig_len, incl_len)
        offset = body + incl_len


# --------------------------------------------------------------------------- frame decoding

def _decode_frame(link_type: int, order: str, frame: bytes, wire_len: int, index: int,
                  time_ns: int) -> Segment | IcmpError:
    """Strip the link layer, then IP, then read the TCP header (or the ICMP error)."""
    version, ip_start = _link_layer(link_type, order, frame)
    ip_wire_len = wire_len - ip_start   # the IP packet's size on the wire (for TSO-sized length fields)
    packet = frame[ip_start:]
    if version == 4:
        if len(packet) >= 20 and packet[0] >> 4 == 4 and packet[9] == 1:
            return _icmp(packet, index, time_ns)
        src, dst, tcp_start, tcp_len = _ipv4(packet, ip_wire_len)
    else:
        src, dst, tcp_start, tcp_len = _ipv6(packet, ip_wire_len)
    return _tcp(packet, tcp_start, tcp_len, src, dst, index, time_ns)


def _link_layer(link_type: int, order: str, frame: bytes) -> tuple[int, int]:
    """Return (IP version, offset of the IP header) or raise _Skip."""
    if link_type == LINK_EN10MB:
        offset = 12
        while True:
            ethertype = _u16(frame, offset)
            if ethertype not in _ETHERTYPE_VLAN:
                return _by_ethertype(ethertype), offset + 2
            offset += 4   # an 802.1Q / 802.1ad tag: skip it, the real ethertype follows
    if link_type in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        return _by_version(frame, 0), 0
    if link_type == LINK_LINUX_SLL:
        _drop_loopback_duplicate(pkttype=_u16(frame, 0), hatype=_u16(frame, 2))
        return _by_ethertype(_u16(frame, 14)), 16
    if link_type == LINK_LINUX_SLL2:
        _need(frame, 11)
        _drop_loopback_duplicate(pkttype=frame[10], hatype=_u16(frame, 8))
        return _by_ethertype(_u16(frame, 0)), 20
    # NULL (writer's byte order) and LOOP (network order): a 4-byte address family.
    _need(frame, 4)
    family = int.from_bytes(frame[:4], "big" if link_type == LINK_LOOP or order == ">" else "little")
    if family == socket.AF_INET:
        return 4, 4
    if family in (24, 28, 30):   # AF_INET6 on NetBSD/OpenBSD, FreeBSD, macOS
        return 6, 4
    raise _Skip("not IP")


def _drop_loopback_duplicate(*, pkttype: int, hatype: int) -> None:
    # With "-i any" a loopback packet could be seen leaving and arriving. Linux
    # delivers only the arriving copy today; drop the leaving one if a capture
    # has it, or every segment on lo would count as its own retransmission.
    if hatype == _ARPHRD_LOOPBACK and pkttype == _PACKET_OUTGOING:
        raise _Skip("loopback duplicate")


def _by_ethertype(ethertype: int) -> int:
    if ethertype == _ETHERTYPE_IPV4:
        return 4
    if ethertype == _ETHERTYPE_IPV6:
        return 6
    raise _Skip("not IP")


def _by_version(frame: bytes, offset: int) -> int:
    _need(frame, offset + 1)
    version = frame[offset] >> 4
    if version not in (4, 6):
        raise _Skip("not IP")
    return version


def _ipv4(packet: bytes, wire_len: int) -> tuple[str, str, int, int]:
    """Return (src, dst, TCP header offset, TCP segment length on the wire)."""
    _need(packet, 20)
    if packet[0] >> 4 != 4:
        raise _Skip("malformed")
    header_len = (packet[0] & 0x0F) * 4
    total_len, frag, proto = _u16(packet, 2), _u16(packet, 6), packet[9]
    if header_len < 20:
        raise _Skip("malformed")
    if total_len == 0:      # TCP segmentation offload: the kernel left the length for the NIC
        total_len = wire_len
    if total_len < header_len:
        raise _Skip("malformed")
    if frag & 0x3FFF:       # more-fragments or a fragment offset: no whole TCP header to trust
        raise _Skip("IP fragment")
    if proto != 6:
        raise _Skip("not TCP")
    src = socket.inet_ntop(socket.AF_INET, packet[12:16])
    dst = socket.inet_ntop(socket.AF_INET, packet[16:20])
    return src, dst, header_len, total_len - header_len


_IPV6_EXTENSIONS = {0, 43, 60}   # hop-by-hop, routing, destination options: (len + 1) * 8 bytes


def _ipv6(packet: bytes, wire_len: int) -> tuple[str, str, int, int]:
    _need(packet, 40)
    if packet[0] >> 4 != 6:
        raise _Skip("malformed")
    payload_len = _u16(packet, 4) or (wire_len - 40)   # 0: jumbogram or offload
    next_header, offset = packet[6], 40
    while next_header != 6:
        _need(packet, offset + 8)
        if next_header in _IPV6_EXTENSIONS:
            length = (packet[offset + 1] + 1) * 8
        elif next_header == 51:    # authentication header counts in 4-byte units
            length = (packet[offset + 1] + 2) * 4
        elif next_header == 44:    # fragment header
            if _u16(packet, offset + 2) & 0xFFF9:
                raise _Skip("IP fragment")
            length = 8
        else:
            raise _Skip("not TCP")
        next_header, offset = packet[offset], offset + length
    tcp_len = payload_len - (offset - 40)
    if tcp_len < 0:
        raise _Skip("malformed")
    src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    return src, dst, offset, tcp_len


_TCP_HEADER = struct.Struct(">HHIIBBH")
_ICMP_ERRORS = {3, 11, 12}   # destination unreachable, time exceeded, parameter problem: they quote a packet


def _icmp(packet: bytes, index: int, time_ns: int) -> IcmpError:
    header_len = (packet[0] & 0x0F) * 4
    if header_len < 20 or _u16(packet, 6) & 0x3FFF:
        raise _Skip("malformed" if header_len < 20 else "IP fragment")
    _need(packet, header_len + 8)
    kind, code = packet[header_len], packet[header_len + 1]
    if kind not in _ICMP_ERRORS:
        raise _Skip("ICMP, not an error")
    inner = header_len + 8              # the quoted IP header, then at least 8 bytes of what it carried
    _need(packet, inner + 20)
    inner_len = (packet[inner] & 0x0F) * 4
    if packet[inner] >> 4 != 4 or inner_len < 20 or packet[inner + 9] != 6:
        raise _Skip("ICMP about something not TCP")
    _need(packet, inner + inner_len + 4)
    sport, dport = _u16(packet, inner + inner_len), _u16(packet, inner + inner_len + 2)
    return IcmpError(index, time_ns, socket.inet_ntop(socket.AF_INET, packet[12:16]),
                     socket.inet_ntop(socket.AF_INET, packet[16:20]), kind, code,
                     Endpoint(socket.inet_ntop(socket.AF_INET, packet[inner + 12:inner + 16]), sport),
                     Endpoint(socket.inet_ntop(socket.AF_INET, packet[inner + 16:inner + 20]), dport),
                     _u16(packet, header_len + 6) if (kind, code) == (3, 4) else 0)


def _tcp(packet: bytes, start: int, tcp_len: int, src: str, dst: str, index: int, time_ns: int) -> Segment:
    _need(packet, start + 20)
    sport, dport, seq, ack, offset_byte, flags, window = _TCP_HEADER.unpack_from(packet, start)
    header_len = (offset_byte >> 4) * 4
    if header_len < 20 or header_len > tcp_len:
        raise _Skip("malformed")
    payload = packet[start + header_len:start + tcp_len]
    return Segment(index, time_ns, Endpoint(src, sport), Endpoint(dst, dport), seq, ack, flags, window,
                   tcp_len - header_len, zlib.crc32(payload) if payload else 0,
                   _mss(packet[start + 20:start + header_len]) if flags & SYN else None)


def _mss(options: bytes) -> int | None:
    """The MSS option (kind 2, length 4) among a SYN's TCP options, if it has one."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:           # end of options
            return None
        if kind == 1:           # no-op padding
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None         # malformed: stop reading, never guess
        if kind == 2 and options[i + 1] == 4 and i + 4 <= len(options):
            return (options[i + 2] << 8) | options[i + 3]
        i += options[i + 1]
    return None


def _need(buf: bytes, size: int) -> None:
    if len(buf) < size:
        raise _Skip("truncated by snaplen")


def _u16(buf: bytes, offset: int) -> int:
    _need(buf, offset + 2)
    return (buf[offset] << 8) | buf[offset + 1]
