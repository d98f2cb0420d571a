"""An NFQUEUE client and the handler thread that gives each queued packet the verdict a policy chooses.

Three layers, each usable alone:

* the codec (sans-IO): :func:`encode_config_cmd`, :func:`encode_config_params`,
  :func:`encode_config_flags`, :func:`encode_verdict` build nfnetlink payloads for
  ``NFNL_SUBSYS_QUEUE``; :func:`decode_packet` turns an ``NFQNL_MSG_PACKET`` into a
  :class:`QueuedPacket` (``NFQA_PACKET_HDR``: id, hw protocol, hook; ``NFQA_PAYLOAD``: the IP packet).
* :class:`NfQueue`: one bound queue on a :class:`~lab.inlab.agent.netlink.NetlinkSocket`. It binds
  with ``NFQNL_CFG_CMD_BIND``, asks for ``NFQNL_COPY_PACKET`` with a range of 65535, and optionally
  sets ``NFQA_CFG_F_FAIL_OPEN`` (a full queue accepts instead of dropping). It sends no
  ``NFQNL_CFG_CMD_PF_BIND``/``PF_UNBIND``: since Linux 3.8 the kernel ignores them, and
  libnetfilter_queue's own ``nf-queue.c`` example dropped them for that reason. Verdicts name the
  packet id, so they may be given in any order: that is what delay and reordering are made of.
* :class:`Handler`: a thread that pulls packets, asks a ``policy`` callable for a :class:`Decision`
  on each, gives the verdict now or keeps it in a heap until its time (delay, jitter, a held
  segment), injects extra copies through an :class:`Injector` (duplicates), and keeps counters
  readable at any time with :meth:`Handler.counters`. It stops within about 0.1 s of :meth:`stop`,
  and gives every verdict still pending on the way out (the kernel would drop them).

The iptables side is the caller's: ``iptables -A FORWARD -p tcp --dport 7000 -j NFQUEUE
--queue-num 5 --queue-bypass`` (with ``--queue-bypass`` packets pass while nobody is bound).
"""

from __future__ import annotations

import errno as errnos
import heapq
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lab.inlab.agent.netlink import (
    NLM_F_REQUEST,
    NLMSG_ERROR,
    Message,
    NetlinkSocket,
    attr_be32,
    attrs_by_type,
    decode_attrs,
    decode_error,
    decode_nfgen,
    encode_attr,
    encode_message,
    encode_nfgen,
    os_error,
)

NFNL_SUBSYS_QUEUE = 3

NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2

NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_OUTDEV = 6
NFQA_PAYLOAD = 10
NFQA_CAP_LEN = 13

NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5

NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2

NFQNL_COPY_NONE = 0
NFQNL_COPY_META = 1
NFQNL_COPY_PACKET = 2

NFQA_CFG_F_FAIL_OPEN = 1 << 0

NF_DROP = 0
NF_ACCEPT = 1

COPY_RANGE = 65535
PACKET_HDR = struct.Struct("!IHB")       # packet_id, hw_protocol, hook (packed: 7 bytes)
VERDICT_HDR = struct.Struct("!II")       # verdict, packet id
CONFIG_CMD = struct.Struct("!BxH")       # command, pad, pf
CONFIG_PARAMS = struct.Struct("!IB")     # copy_range, copy_mode (packed: 5 bytes)
SO_RCVBUFFORCE = 33                      # socket.SO_RCVBUFFORCE is missing from some builds
NETLINK_NO_ENOBUFS = 5


def _msg_type(subtype: int) -> int:
    return (NFNL_SUBSYS_QUEUE << 8) | subtype


def _check_queue(queue: int) -> int:
    if not isinstance(queue, int) or isinstance(queue, bool) or not 0 <= queue <= 65535:
        raise ValueError(f"queue number {queue!r} must be an integer 0..65535 (iptables --queue-num)")
    return queue


# --------------------------------------------------------------------------- codec

def encode_config_cmd(queue: int, command: int, pf: int = socket.AF_UNSPEC) -> bytes:
    """The payload of an NFQNL_MSG_CONFIG carrying one command (BIND, UNBIND) for ``queue``."""
    return encode_nfgen(socket.AF_UNSPEC, _check_queue(queue)) + encode_attr(NFQA_CFG_CMD,
                                                                             CONFIG_CMD.pack(command, pf))


def encode_config_params(queue: int, copy_mode: int = NFQNL_COPY_PACKET, copy_range: int = COPY_RANGE) -> bytes:
    if not 0 <= copy_range <= 0xFFFF:
        raise ValueError(f"copy range {copy_range!r} must be 0..65535 bytes")
    return encode_nfgen(socket.AF_UNSPEC, _check_queue(queue)) + encode_attr(
        NFQA_CFG_PARAMS, CONFIG_PARAMS.pack(copy_range, copy_mode))


def encode_config_flags(queue: int, flags: int, mask: int) -> bytes:
    """Set the bits of ``mask`` to those of ``flags`` (``NFQA_CFG_F_FAIL_OPEN``...)."""
    return encode_nfgen(socket.AF_UNSPEC, _check_queue(queue)) + attr_be32(NFQA_CFG_MASK, mask) + attr_be32(
        NFQA_CFG_FLAGS, flags)


def encode_config_maxlen(queue: int, max_len: int) -> bytes:
    if not 1 <= max_len <= 0xFFFFFFFF:
        raise ValueError(f"queue max length {max_len!r} must be a positive number of packets")
    return encode_nfgen(socket.AF_UNSPEC, _check_queue(queue)) + attr_be32(NFQA_CFG_QUEUE_MAXLEN, max_len)


def encode_verdict(queue: int, packet_id: int, verdict: int, payload: bytes | None = None) -> bytes:
    """The payload of an NFQNL_MSG_VERDICT; ``payload`` replaces the packet (the whole IP packet)."""
    if verdict not in (NF_DROP, NF_ACCEPT):
        raise ValueError(f"verdict {verdict!r} must be NF_DROP ({NF_DROP}) or NF_ACCEPT ({NF_ACCEPT})")
    body = encode_nfgen(socket.AF_UNSPEC, _check_queue(queue)) + encode_attr(
        NFQA_VERDICT_HDR, VERDICT_HDR.pack(verdict, packet_id))
    if payload is not None:
        body += encode_attr(NFQA_PAYLOAD, payload)
    return body


@dataclass(frozen=True)
class QueuedPacket:
    """One packet the kernel queued: the id its verdict must name, and the IP packet (``payload``)."""

    queue: int
    packet_id: int
    hw_protocol: int
    hook: int
    payload: bytes
    mark: int = 0
    indev: int = 0
    outdev: int = 0
    cap_len: int | None = None    # set when the kernel copied less than the whole packet


def is_packet(message: Message) -> bool:
    return message.type == _msg_type(NFQNL_MSG_PACKET)


def decode_packet(message: Message) -> QueuedPacket:
    """An NFQNL_MSG_PACKET message. Raises ValueError for another message or one without a packet header."""
    if not is_packet(message):
        raise ValueError(f"message type {message.type:#06x} is not an NFQUEUE packet ({_msg_type(NFQNL_MSG_PACKET):#06x})")
    nfgen, rest = decode_nfgen(message.payload)
    attrs = attrs_by_type(decode_attrs(rest))
    header = attrs.get(NFQA_PACKET_HDR)
    if header is None or len(header.value) != PACKET_HDR.size:
        raise ValueError(f"NFQUEUE packet without a {PACKET_HDR.size}-byte NFQA_PACKET_HDR")
    packet_id, hw_protocol, hook = PACKET_HDR.unpack(header.value)

    def be32(kind: int) -> int:
        return attrs[kind].be32() if kind in attrs else 0

    return QueuedPacket(queue=nfgen.res_id, packet_id=packet_id, hw_protocol=hw_protocol, hook=hook,
                        payload=attrs[NFQA_PAYLOAD].value if NFQA_PAYLOAD in attrs else b"",
                        mark=be32(NFQA_MARK), indev=be32(NFQA_IFINDEX_INDEV), outdev=be32(NFQA_IFINDEX_OUTDEV),
                        cap_len=attrs[NFQA_CAP_LEN].be32() if NFQA_CAP_LEN in attrs else None)


# --------------------------------------------------------------------------- the queue

class NfQueue:
    """One NFQUEUE queue bound on its own netlink socket (in the network namespace it is created in)::

        with NfQueue(5, fail_open=True) as q:
            for packet in q.receive(0.1):
                q.verdict(packet.packet_id, NF_ACCEPT)

    Raises OSError if the queue cannot be bound (``EPERM`` without CAP_NET_ADMIN; ``EBUSY`` when
    another socket has it).
    """

    def __init__(self, queue: int, *, copy_range: int = COPY_RANGE, fail_open: bool = False,
                 max_len: int | None = None, timeout: float = 2.0, rcvbuf: int = 8 << 20) -> None:
        self.queue = _check_queue(queue)
        self.verdict_errors = 0
        self.last_verdict_error: int | None = None
        self.overruns = 0
        self._nl = NetlinkSocket(timeout=timeout)
        try:
            try:  # past rmem_max needs CAP_NET_ADMIN, which the router agent has; fall back without it
                self._nl.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                self._nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._config(encode_config_cmd(queue, NFQNL_CFG_CMD_BIND), f"binding NFQUEUE {queue}")
            self._config(encode_config_params(queue, NFQNL_COPY_PACKET, copy_range),
                         f"setting NFQUEUE {queue} to copy {copy_range} bytes of each packet")
            if fail_open:
                self._config(encode_config_flags(queue, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN),
                             f"setting NFQUEUE {queue} fail-open")
            if max_len is not None:
                self._config(encode_config_maxlen(queue, max_len), f"setting NFQUEUE {queue} max length")
        except BaseException:
            self._nl.close()
            raise
        self._closed = False

    def _config(self, payload: bytes, what: str) -> None:
        self._nl.request(_msg_type(NFQNL_MSG_CONFIG), 0, payload, what=what)

    def fileno(self) -> int:
        return self._nl.fileno()

    def receive(self, timeout: float, batch: int = 64) -> list[QueuedPacket]:
        """The packets that arrive within ``timeout`` (at most ``batch`` datagrams, [] if none).

        An NLMSG_ERROR (a verdict the kernel refused, e.g. an id it no longer holds) is counted in
        :attr:`verdict_errors`; ENOBUFS (the socket buffer overflowed: the kernel dropped packet
        messages, or with fail-open accepted them unseen) is counted in :attr:`overruns`.
        """
        packets: list[QueuedPacket] = []
        wait = timeout
        for _ in range(batch):
            try:
                messages = self._nl.receive(wait)
            except OSError as exc:
                if exc.errno != errnos.ENOBUFS:
                    raise
                self.overruns += 1
                continue
            if not messages:
                break
            wait = 0.0  # after the first datagram, take only what is already there
            for message in messages:
                if is_packet(message):
                    packets.append(decode_packet(message))
                elif message.type == NLMSG_ERROR:
                    ack = decode_error(message)
                    if ack.errno:
                        self.verdict_errors += 1
                        self.last_verdict_error = ack.errno
        return packets

    def verdict(self, packet_id: int, verdict: int, payload: bytes | None = None) -> None:
        """Give a packet its verdict (no ack is asked: a refusal comes back to :meth:`receive`)."""
        self._nl.send_raw(encode_message(_msg_type(NFQNL_MSG_VERDICT), NLM_F_REQUEST, self._nl.next_seq(),
                                         encode_verdict(self.queue, packet_id, verdict, payload)))

    def close(self) -> None:
        """Unbind (packets still queued are dropped by the kernel) and close; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._nl.request(_msg_type(NFQNL_MSG_CONFIG), 0, encode_config_cmd(self.queue, NFQNL_CFG_CMD_UNBIND),
                             what=f"unbinding NFQUEUE {self.queue}")
        except OSError:
            pass  # closing the socket unbinds too; the unbind is only to be prompt
        finally:
            self._nl.close()

    def __enter__(self) -> NfQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --------------------------------------------------------------------------- decisions and the handler

@dataclass(frozen=True)
class Decision:
    """What a policy wants done with one packet.

    ``accept``: NF_ACCEPT or NF_DROP. ``delay``: seconds before the verdict is given. ``payload``:
    a replacement IP packet (counted as ``corrupted``). ``copies``: extra copies of the (possibly
    replaced) packet injected right after the verdict (``duplicated``). ``hold``: keep the verdict
    until a later decision with ``release`` (or until ``delay`` runs out, whichever is first).
    ``release``: after this packet's verdict, give every held one's.
    """

    accept: bool = True
    delay: float = 0.0
    payload: bytes | None = None
    copies: int = 0
    hold: bool = False
    release: bool = False

    def __post_init__(self) -> None:
        if self.delay < 0 or self.delay > 60:
            raise ValueError(f"delay {self.delay!r} must be 0..60 seconds")
        if self.copies < 0 or self.copies > 100:
            raise ValueError(f"copies {self.copies!r} must be 0..100")
        if self.hold and self.delay <= 0:
            raise ValueError("a held packet needs a delay > 0: the longest it may be held")


ACCEPT = Decision()
DROP = Decision(accept=False)
Policy = Callable[[QueuedPacket], Decision]


def accept_all(_packet: QueuedPacket) -> Decision:
    return ACCEPT


class Injector(Protocol):
    def send(self, packet: bytes) -> None: ...


class RawInjector:
    """Sends whole IPv4 packets (header included) out of this namespace: ``SOCK_RAW``/``IPPROTO_RAW``
    implies ``IP_HDRINCL``. An injected packet takes the OUTPUT path, so a FORWARD-chain NFQUEUE rule
    never queues it again."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            self._sock.settimeout(0.5)
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, "opening a raw IPv4 socket to inject packets") from exc

    def send(self, packet: bytes) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            raise ValueError(f"only IPv4 packets can be injected; got {len(packet)} bytes starting {packet[:1].hex()}")
        dst = socket.inet_ntoa(packet[16:20])
        try:
            self._sock.sendto(packet, (dst, 0))
        except OSError as exc:
            raise os_error(exc.errno or errnos.EIO, f"injecting a {len(packet)}-byte packet to {dst}") from exc

    def close(self) -> None:
        self._sock.close()


COUNTERS = ("seen", "accepted", "dropped", "duplicated", "delayed", "reordered", "corrupted", "bytes",
            "policy_errors", "inject_errors", "verdict_errors", "overruns")


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    packet: QueuedPacket = None  # type: ignore[assignment]
    decision: Decision = None     # type: ignore[assignment]
    arrival: int = 0              # the packet's place in arrival order


class Handler:
    """Gives every packet of an :class:`NfQueue` the verdict ``policy`` decides, in a thread::

        handler = Handler(NfQueue(5, fail_open=True), policy, injector=RawInjector(), owns=True)
        handler.start()
        ...
        handler.counters()   # {"seen": 120, "accepted": 120, "delayed": 40, ...}
        handler.stop()       # within ~0.1 s; gives pending verdicts, closes what it owns

    A policy that raises is a bug: the packet is accepted unchanged, ``policy_errors`` counts it and
    :attr:`last_error` keeps the exception. An error of the queue itself ends the thread, is kept in
    :attr:`error` and re-raised by :meth:`stop`.

    Counters: ``seen`` packets and their ``bytes``; ``accepted``/``dropped`` verdicts; ``corrupted``
    (given a replacement payload); ``duplicated`` (copies injected); ``delayed`` (verdict given
    later than it could have been, not overtaken); ``reordered`` (held or delayed and overtaken by a
    packet that arrived after it).
    """

    def __init__(self, queue: NfQueue, policy: Policy, *, injector: Injector | None = None,
                 owns: bool = False, poll: float = 0.05, name: str = "nfqueue-handler") -> None:
        if not 0 < poll <= 0.2:
            raise ValueError(f"poll {poll!r} must be over 0 and at most 0.2 s (how soon a stop is seen)")
        self.queue = queue
        self.policy = policy
        self.injector = injector
        self.owns = owns
        self.poll = poll
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heap: list[_Pending] = []
        self._order = itertools.count()
        self._arrivals = 0
        self._latest_given = -1      # the latest arrival whose verdict is given
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- control
    def start(self) -> Handler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> dict[str, int]:
        """Stop the thread (it gives every pending verdict first), close what it owns; the final counters."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the NFQUEUE handler did not stop within {timeout:g} s")
        if self.owns:
            self.queue.close()
            if isinstance(self.injector, RawInjector):
                self.injector.close()
        if self.error is not None:
            raise self.error
        return self.counters()

    def __enter__(self) -> Handler:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def counters(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._counts)
        counts["verdict_errors"] = self.queue.verdict_errors
        counts["overruns"] = self.queue.overruns
        counts["pending"] = len(self._heap)
        return counts

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta

    # -- the loop
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                wait = self.poll
                if self._heap:
                    wait = min(wait, max(0.0, self._heap[0].due - time.monotonic()))
                for packet in self.queue.receive(wait):
                    self._handle(packet)
                self._release_due(time.monotonic())
        except BaseException as exc:  # kept for stop(); the thread must not die silently
            self.error = exc
        finally:
            try:
                self._release_due(float("inf"))
            except BaseException as exc:
                self.error = self.error or exc

    def _handle(self, packet: QueuedPacket) -> None:
        self._count(seen=1, bytes=len(packet.payload))
        arrival = self._arrivals
        self._arrivals += 1
        try:
            decision = self.policy(packet)
        except Exception as exc:
            self.last_error = exc
            self._count(policy_errors=1)
            decision = ACCEPT
        if decision.delay > 0:
            heapq.heappush(self._heap, _Pending(time.monotonic() + decision.delay, next(self._order), packet,
                                                decision, arrival))
        else:
            self._give(packet, decision, None, arrival)
        if decision.release:
            for pending in [p for p in self._heap if p.decision.hold]:
                self._heap.remove(pending)
                self._give(pending.packet, pending.decision, pending, pending.arrival)
            heapq.heapify(self._heap)

    def _release_due(self, now: float) -> None:
        while self._heap and self._heap[0].due <= now:
            pending = heapq.heappop(self._heap)
            self._give(pending.packet, pending.decision, pending, pending.arrival)

    def _give(self, packet: QueuedPacket, decision: Decision, pending: _Pending | None, arrival: int) -> None:
        self.queue.verdict(packet.packet_id, NF_ACCEPT if decision.accept else NF_DROP, decision.payload)
        overtaken = self._latest_given > arrival   # a packet that came after it has gone first
        self._latest_given = max(self._latest_given, arrival)
        counts = {"accepted" if decision.accept else "dropped": 1}
        if decision.payload is not None:
            counts["corrupted"] = 1
        if pending is not None:
            counts["reordered" if overtaken else "delayed"] = 1
        if decision.copies and decision.accept and self.injector is not None:
            sent = 0
            for _ in range(decision.copies):
                try:
                    self.injector.send(decision.payload if decision.payload is not None else packet.payload)
                    sent += 1
                except (OSError, ValueError) as exc:
                    self.last_error = exc
                    counts["inject_errors"] = counts.get("inject_errors", 0) + 1
            counts["duplicated"] = sent
        self._count(**counts)


def start_handler(queue: int, policy: Policy, *, fail_open: bool = True, inject: bool = True,
                  max_len: int | None = None) -> Handler:
    """Bind ``queue`` in this namespace and start a :class:`Handler` owning it (and a raw injector)."""
    nfq = NfQueue(queue, fail_open=fail_open, max_len=max_len)
    try:
        injector = RawInjector() if inject else None
    except OSError:
        nfq.close()
        raise
    return Handler(nfq, policy, injector=injector, owns=True).start()


__all__ = ["ACCEPT", "DROP", "COUNTERS", "Decision", "Handler", "Injector", "NfQueue", "Policy", "QueuedPacket",
           "RawInjector", "accept_all", "decode_packet", "encode_config_cmd", "encode_config_flags",
           "encode_config_params", "encode_verdict", "start_handler"]
