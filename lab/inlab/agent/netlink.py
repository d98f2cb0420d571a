"""Netlink and nfnetlink on bytes, and one small socket that speaks it: what NFQUEUE and cttimeout sit on.

The codec is sans-IO: :func:`encode_message` / :func:`decode_messages` for ``struct nlmsghdr``
framing (a buffer may hold several messages; every one is decoded, and a truncated trailing
message is an error, never silently dropped), :func:`encode_nfgen` / :func:`decode_nfgen` for
``struct nfgenmsg``, and :func:`encode_attr` / :func:`decode_attrs` for the TLV attributes
(4-byte aligned, nested, with ``NLA_F_NESTED`` and ``NLA_F_NET_BYTEORDER`` masked off the type
and kept as flags). An ``NLMSG_ERROR`` decodes to :class:`Ack`; :func:`os_error` is the one place
an errno (from the kernel's reply or from the socket itself) becomes an :class:`OSError`, whose
constructor picks the subclass (``EEXIST`` -> :class:`FileExistsError`, ``EPERM`` ->
:class:`PermissionError`, ...).

:class:`NetlinkSocket` is the only I/O here: ``AF_NETLINK`` / ``NETLINK_NETFILTER``, a deadline on
every receive, sequence numbers, and :meth:`NetlinkSocket.request`, which sends with
``NLM_F_ACK`` and waits for the ``NLMSG_ERROR`` carrying error 0 for that sequence number.
Messages for other sequence numbers that arrive meanwhile (a queued packet) are kept, in order,
for the next :meth:`NetlinkSocket.receive`.

Byte order: netlink headers and attribute headers are host order; nfgenmsg's ``res_id`` and
almost every nfnetlink attribute value are network order (big-endian).
"""

from __future__ import annotations

import errno as errnos
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from lab.toolerrors import UsageError

NETLINK_NETFILTER = 12

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP = 0x300           # NLM_F_ROOT | NLM_F_MATCH, for GET requests
NLM_F_REPLACE = 0x100        # the four below are for NEW requests
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

NFNETLINK_V0 = 0

NLMSGHDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid (portid)
NFGENMSG = struct.Struct("!BBH")     # family, version, res_id (big-endian, unlike the netlink headers)
NLATTR = struct.Struct("=HH")        # len, type
ERROR_CODE = struct.Struct("=i")     # NLMSG_ERROR: negative errno, then the request's header


class NetlinkDecodeError(UsageError, ValueError):
    """Bytes that are not well-formed netlink: the message says where and what was expected.

    A ValueError too, as :class:`lab.evidence.CaptureError` is: decoders' callers catch it as one.
    """


def align(length: int) -> int:
    """Netlink aligns messages and attributes to 4 bytes (NLMSG_ALIGN, NLA_ALIGN)."""
    return (length + 3) & ~3


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (align(len(data)) - len(data))


# --------------------------------------------------------------------------- messages

@dataclass(frozen=True)
class Message:
    """One netlink message: its header fields and its payload (without the padding)."""

    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes

    @property
    def subsystem(self) -> int:
        """For nfnetlink messages: the NFNL_SUBSYS_* number (the type's high byte)."""
        return self.type >> 8

    @property
    def subtype(self) -> int:
        """For nfnetlink messages: the subsystem's message type (the type's low byte)."""
        return self.type & 0xFF


def encode_message(msg_type: int, flags: int, seq: int, payload: bytes = b"", pid: int = 0) -> bytes:
    """One message, padded to 4 bytes; ``nlmsg_len`` counts the header and payload, not the padding."""
    for name, value, bits in (("type", msg_type, 16), ("flags", flags, 16), ("seq", seq, 32), ("pid", pid, 32)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"netlink {name} {value!r} does not fit: it must be 0..{(1 << bits) - 1}")
    return _pad(NLMSGHDR.pack(NLMSGHDR.size + len(payload), msg_type, flags, seq, pid) + payload)


def decode_messages(data: bytes) -> list[Message]:
    """Every message in ``data`` (one recv may hold several). Raises :class:`NetlinkDecodeError` if the
    buffer ends inside a header or inside a message, or a length is smaller than the header."""
    messages = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < NLMSGHDR.size:
            raise NetlinkDecodeError(f"truncated netlink header at byte {offset}: {len(data) - offset} bytes "
                                     f"left, a header is {NLMSGHDR.size}")
        length, msg_type, flags, seq, pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            raise NetlinkDecodeError(f"netlink message at byte {offset} has length {length}, less than its "
                                     f"{NLMSGHDR.size}-byte header")
        if offset + length > len(data):
            raise NetlinkDecodeError(f"truncated netlink message at byte {offset}: length {length}, only "
                                     f"{len(data) - offset} bytes left")
        messages.append(Message(msg_type, flags, seq, pid, bytes(data[offset + NLMSGHDR.size:offset + length])))
        # The last message's padding may be missing from a recv; never read past the end.
        offset = min(offset + align(length), len(data))
    return messages


# --------------------------------------------------------------------------- nfgenmsg

@dataclass(frozen=True)
class NfGen:
    """``struct nfgenmsg``: the address family, the version (0) and the resource id (a queue number)."""

    family: int
    version: int
    res_id: int


def encode_nfgen(family: int, res_id: int = 0, version: int = NFNETLINK_V0) -> bytes:
    if not 0 <= family < 256 or not 0 <= res_id < 65536:
        raise ValueError(f"nfgenmsg family {family!r} must be 0..255 and res_id {res_id!r} 0..65535")
    return NFGENMSG.pack(family, version, res_id)


def decode_nfgen(payload: bytes) -> tuple[NfGen, bytes]:
    """The nfgenmsg at the head of an nfnetlink payload, and the attributes' bytes after it."""
    if len(payload) < NFGENMSG.size:
        raise NetlinkDecodeError(f"nfnetlink payload of {len(payload)} bytes is shorter than its "
                                 f"{NFGENMSG.size}-byte nfgenmsg header")
    family, version, res_id = NFGENMSG.unpack_from(payload)
    return NfGen(family, version, res_id), payload[NFGENMSG.size:]


# --------------------------------------------------------------------------- attributes

@dataclass(frozen=True)
class Attr:
    """One attribute: its type with the flag bits masked off, its value (unpadded) and the two flags."""

    type: int
    value: bytes
    nested: bool = False
    net_byteorder: bool = False

    def children(self) -> list[Attr]:
        """The attributes nested in this one's value."""
        return decode_attrs(self.value)

    def u8(self) -> int:
        return self._fixed("!B")

    def be16(self) -> int:
        return self._fixed("!H")

    def be32(self) -> int:
        return self._fixed("!I")

    def be64(self) -> int:
        return self._fixed("!Q")

    def string(self) -> str:
        """A NUL-terminated string attribute (the NUL and anything after it dropped)."""
        return self.value.split(b"\0", 1)[0].decode()

    def _fixed(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if len(self.value) != size:
            raise NetlinkDecodeError(f"attribute type {self.type} has {len(self.value)} bytes, expected {size}")
        return struct.unpack(fmt, self.value)[0]


def encode_attr(attr_type: int, value: bytes, *, nested: bool = False, net_byteorder: bool = False) -> bytes:
    """One attribute, padded to 4 bytes; ``nla_len`` counts header and value, not the padding."""
    if not 0 <= attr_type <= NLA_TYPE_MASK:
        raise ValueError(f"attribute type {attr_type!r} must be 0..{NLA_TYPE_MASK} (the top two bits are flags)")
    if NLATTR.size + len(value) > 0xFFFF:
        raise ValueError(f"attribute type {attr_type} value of {len(value)} bytes is over the 65531 an "
                         f"attribute can hold")
    flags = (NLA_F_NESTED if nested else 0) | (NLA_F_NET_BYTEORDER if net_byteorder else 0)
    return _pad(NLATTR.pack(NLATTR.size + len(value), attr_type | flags) + value)


def encode_nested(attr_type: int, children: Iterable[bytes]) -> bytes:
    """A nested attribute holding already-encoded attributes (NLA_F_NESTED set, as the kernel's strict
    validation wants for new nests)."""
    return encode_attr(attr_type, b"".join(children), nested=True)


def attr_u8(attr_type: int, value: int) -> bytes:
    return encode_attr(attr_type, struct.pack("!B", value))


def attr_be16(attr_type: int, value: int) -> bytes:
    return encode_attr(attr_type, struct.pack("!H", value))


def attr_be32(attr_type: int, value: int) -> bytes:
    return encode_attr(attr_type, struct.pack("!I", value))


def attr_string(attr_type: int, value: str) -> bytes:
    """A NUL-terminated string (NLA_NUL_STRING / NLA_STRING both accept it)."""
    return encode_attr(attr_type, value.encode() + b"\0")


def decode_attrs(data: bytes) -> list[Attr]:
    """Every attribute in ``data``, in order. Raises :class:`NetlinkDecodeError` on a truncated one."""
    attrs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < NLATTR.size:
            raise NetlinkDecodeError(f"truncated attribute header at byte {offset}: {len(data) - offset} "
                                     f"bytes left, a header is {NLATTR.size}")
        length, raw_type = NLATTR.unpack_from(data, offset)
        if length < NLATTR.size:
            raise NetlinkDecodeError(f"attribute at byte {offset} has length {length}, less than its "
                                     f"{NLATTR.size}-byte header")
        if offset + length > len(data):
            raise NetlinkDecodeError(f"truncated attribute (type {raw_type & NLA_TYPE_MASK}) at byte {offset}: "
                                     f"length {length}, only {len(data) - offset} bytes left")
        attrs.append(Attr(raw_type & NLA_TYPE_MASK, bytes(data[offset + NLATTR.size:offset + length]),
                          bool(raw_type & NLA_F_NESTED), bool(raw_type & NLA_F_NET_BYTEORDER)))
        offset = min(offset + align(length), len(data))
    return attrs


def attrs_by_type(attrs: Iterable[Attr]) -> dict[int, Attr]:
    """Type -> attribute (the last one wins, as the kernel's nla_parse does)."""
    return {attr.type: attr for attr in attrs}


# --------------------------------------------------------------------------- errors and acks

@dataclass(frozen=True)
class Ack:
    """An ``NLMSG_ERROR``: ``errno`` 0 is an acknowledgement, otherwise the request failed with it."""

    errno: int
    request_type: int
    request_seq: int


def decode_error(message: Message) -> Ack:
    """The errno (positive) and the request's type and seq from an NLMSG_ERROR's payload."""
    if message.type != NLMSG_ERROR:
        raise ValueError(f"message type {message.type} is not NLMSG_ERROR ({NLMSG_ERROR})")
    if len(message.payload) < ERROR_CODE.size + NLMSGHDR.size:
        raise NetlinkDecodeError(f"NLMSG_ERROR payload of {len(message.payload)} bytes is shorter than the "
                                 f"{ERROR_CODE.size + NLMSGHDR.size} its error code and request header take")
    (code,) = ERROR_CODE.unpack_from(message.payload)
    _, req_type, _, req_seq, _ = NLMSGHDR.unpack_from(message.payload, ERROR_CODE.size)
    return Ack(-code, req_type, req_seq)


def os_error(err: int, what: str) -> OSError:
    """The one translation of an errno into an exception: the right OSError subclass, saying what failed.

    ``OSError(errno, text)`` itself picks :class:`FileExistsError` for EEXIST, :class:`FileNotFoundError`
    for ENOENT, :class:`PermissionError` for EPERM, :class:`TimeoutError` for ETIMEDOUT, and so on.
    """
    return OSError(err, f"{what}: {os.strerror(err)} ({errnos.errorcode.get(err, err)})")


# --------------------------------------------------------------------------- the socket

class NetlinkSocket:
    """A netlink socket with a deadline on every receive; one per user (not shared between threads
    unless the caller serialises :meth:`request`)::

        with NetlinkSocket() as nl:
            nl.request(msg_type, NLM_F_CREATE, payload)     # raises OSError unless the kernel acks with 0
    """

    RECV_SIZE = 256 * 1024   # over any single message NFQUEUE sends (a 65535-byte copy plus headers)

    def __init__(self, protocol: int = NETLINK_NETFILTER, *, timeout: float = 2.0, rcvbuf: int | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = timeout
        self._seq = int(time.time()) & 0xFFFFFF  # distinct from a previous process's sequence numbers
        self._pending: deque[Message] = deque()
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, f"opening a netlink socket (protocol {protocol})") from exc
        try:
            if rcvbuf is not None:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._sock.bind((0, 0))  # the kernel assigns the port id
            self.portid = self._sock.getsockname()[0]
        except OSError as exc:
            self._sock.close()
            raise os_error(exc.errno or errnos.EIO, "binding a netlink socket") from exc

    def fileno(self) -> int:
        return self._sock.fileno()

    def setsockopt(self, level: int, option: int, value: int) -> None:
        try:
            self._sock.setsockopt(level, option, value)
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, f"setsockopt({level}, {option})") from exc

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def send(self, msg_type: int, flags: int, payload: bytes) -> int:
        """Send one request (NLM_F_REQUEST is added); returns its sequence number."""
        seq = self.next_seq()
        self.send_raw(encode_message(msg_type, flags | NLM_F_REQUEST, seq, payload))
        return seq

    def send_raw(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, (0, 0))
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, f"sending {len(data)} bytes on netlink") from exc

    def receive(self, timeout: float | None = None) -> list[Message]:
        """The messages of one datagram (or those kept by :meth:`request`); [] if none came in ``timeout``."""
        if self._pending:
            messages = list(self._pending)
            self._pending.clear()
            return messages
        return self._recv_datagram(self.timeout if timeout is None else timeout)

    def _recv_datagram(self, timeout: float) -> list[Message]:
        try:
            ready, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
            if not ready:
                return []
            data = self._sock.recv(self.RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, "receiving from netlink") from exc
        return decode_messages(data)

    def request(self, msg_type: int, flags: int, payload: bytes, *, what: str = "netlink request") -> list[Message]:
        """Send with NLM_F_ACK and wait (at most ``timeout``) for its NLMSG_ERROR.

        Returns the replies with the request's sequence number that came before the ack (a GET's
        answer; NLMSG_DONE ends a dump). Raises the :func:`os_error` of a non-zero error, or
        :class:`TimeoutError` if no ack comes in time. Other messages (a queued packet) are kept
        for :meth:`receive`.
        """
        seq = self.send(msg_type, flags | NLM_F_ACK, payload)
        deadline = time.monotonic() + self.timeout
        replies: list[Message] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise os_error(errnos.ETIMEDOUT, f"{what}: no acknowledgement in {self.timeout:g} s")
            messages = self._recv_datagram(left)
            for index, message in enumerate(messages):
                if message.seq != seq:
                    self._pending.append(message)
                    continue
                if message.type in (NLMSG_ERROR, NLMSG_DONE):
                    self._pending.extend(messages[index + 1:])  # whatever shared the ack's datagram
                    ack = decode_error(message) if message.type == NLMSG_ERROR else None
                    if ack is not None and ack.errno:
                        raise os_error(ack.errno, what)
                    return replies
                replies.append(message)
