"""The careful connection: framed messages over TCP that either arrive whole or fail loudly, in bounded time.

The HOWTO's demonstration class hangs forever on a silent peer, returns short
messages when ``send`` or ``recv`` handles fewer bytes than asked, and turns
every failure into one ``RuntimeError``. :class:`RobustConnection` is the
counterpart the lab's scenarios hold up against it:

* every wait is a ``poll`` with a deadline on a non-blocking socket, never a
  bare blocking call;
* while waiting for a reply it sends PING after each ``heartbeat_interval`` of
  silence, counts any byte from the peer as a sign of life, and declares the
  peer dead after ``dead_after`` seconds of total silence;
* a send that makes no progress for ``timeouts.write`` is reported as
  :class:`~lab.sockets.errors.SendStalled` (the peer stopped reading) instead of
  blocking;
* every failure is one class of :mod:`lab.sockets.errors`, produced by
  :func:`lab.sockets.errors.translating`, so *how* the conversation died is in the type;
* a message is only ever returned whole (the sans-IO :class:`~lab.sockets.framing.Decoder`
  does the framing); EOF inside a frame is :class:`~lab.sockets.errors.IncompleteMessage`.

Use it like a file, in a ``with`` block::

    config = RobustConfig(timeouts=Timeouts(connect=1.0, read=5.0, write=2.0, idle=30.0))
    with RobustConnection.connect("127.0.0.1", 7000, config) as conn:
        reply = conn.request(b"hello")      # DATA out, the matching ECHO back, checked
        rtt = conn.ping()

:class:`lab.sockets.reliable.ReliableSender` adds a session, sequence numbers
and reconnection with backoff on top, so that a stream of messages survives a
server restart with each message delivered exactly once.

Not thread-safe: one thread owns a connection.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from lab.sockets import framing
from lab.sockets.errors import (
    LabError, PeerClosed, PeerUnresponsive, Phase, ProtocolError, SendStalled, translating,
)
from lab.sockets.framing import CLOSED, NEED_DATA, Decoder, Frame, FrameType
from lab.sockets.timeouts import Timeouts

# One recv_into target per connection: big enough that a 1 MiB echo takes a
# handful of syscalls, small enough to keep per-connection memory modest.
_RECV_BUFFER = 256 * 1024
_LINGER_ABORT = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends RST
_JOIN_LIMIT = 16 * 1024  # bodies up to this are joined to their header and sent with one send()


def _check_seconds(name: str, value: object, *, allow_none: bool, whole: bool = False) -> None:
    accepted = ("a whole number of seconds >= 1" if whole else "a finite number of seconds > 0")
    accepted += " or None" if allow_none else ""
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{name!r} must be {accepted}; got None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name!r} must be {accepted}; got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value <= 0 or (whole and (value < 1 or float(value) != int(value))):
        raise ValueError(f"{name!r} must be {accepted}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class RobustConfig:
    """Every knob of a :class:`RobustConnection`, with the time bound each one implies.

    The defaults are the bounds the lab's scenarios quote:

    ``timeouts.connect`` (3 s)
        A connect that gets no SYN-ACK fails with ConnectTimeout within this.
        A refused connect (RST) fails at once, whatever this is.
    ``timeouts.read`` (5 s)
        The longest wait for one reply (or for the rest of a started frame),
        counted from the moment we start waiting. Heartbeats do not extend
        it: a peer that answers PINGs but never replies is caught here,
        as PeerUnresponsive(detected_by="read-deadline").
    ``timeouts.write`` (2 s)
        A send that makes no progress for this long fails with SendStalled:
        the peer stopped reading and both kernel buffers are full. It must be
        shorter than ``user_timeout_ms``: Linux applies TCP_USER_TIMEOUT to
        zero-window probing as well, so with a longer write deadline a peer
        that merely stopped reading would surface as the kernel's ETIMEDOUT.
    ``heartbeat_interval`` (1 s) and ``dead_after`` (3 s)
        While waiting, a PING goes out after each ``heartbeat_interval`` of
        silence; ``dead_after`` seconds without a single byte from the peer
        ⇒ PeerUnresponsive(detected_by="heartbeat"). A frozen peer is thus
        detected within ``dead_after`` of the wait starting (quoted with
        slack as ``dead_after + heartbeat_interval``), long before
        ``timeouts.read``. ``heartbeat_interval=None`` turns heartbeats off;
        then only ``timeouts.read`` bounds a wait.
    ``keepalive`` with ``keepalive_idle/interval/count`` (1 s / 1 s / 3)
        The kernel probes an idle connection: a peer that vanished while we
        were *not* talking is found within ``idle + interval * count`` = 4 s
        and the next call fails with PeerUnresponsive(detected_by="keepalive").
        The kernel takes whole seconds only.
    ``user_timeout_ms`` (3000; Linux TCP_USER_TIMEOUT)
        Data we sent that stays unacknowledged this long makes the kernel
        drop the connection: PeerUnresponsive(detected_by="user-timeout")
        within 3 s of the peer's host going away mid-send. ``None`` or 0 =
        the kernel default (about 15 minutes of retransmissions).
    ``timeouts.idle`` (30 s)
        How long :meth:`RobustConnection.wait_message` lets a live peer stay
        quiet when nothing was asked of it (a server push, the next request on
        a server-side connection): PeerUnresponsive(detected_by="idle-deadline").
        A peer that is gone is found sooner, by heartbeats or keepalive.
    ``max_payload``
        Largest frame payload accepted or sent; a bigger header announcement
        is FrameTooLarge before any memory is allocated for it.
    ``nodelay``
        TCP_NODELAY: small request/reply frames go out at once instead of
        waiting up to 40 ms for Nagle/delayed-ACK.
    """

    timeouts: Timeouts = dataclasses.field(default_factory=Timeouts)
    keepalive: bool = True
    keepalive_idle: int = 1
    keepalive_interval: int = 1
    keepalive_count: int = 3
    user_timeout_ms: int | None = 3000
    heartbeat_interval: float | None = 1.0
    dead_after: float = 3.0
    max_payload: int = framing.DEFAULT_MAX_PAYLOAD
    nodelay: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.timeouts, Timeouts):
            raise ValueError(f"'timeouts' must be a lab.sockets.timeouts.Timeouts; got {self.timeouts!r}")
        for name in ("keepalive", "nodelay"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name!r} must be True or False; got {getattr(self, name)!r}")
        _check_seconds("keepalive_idle", self.keepalive_idle, allow_none=False, whole=True)
        _check_seconds("keepalive_interval", self.keepalive_interval, allow_none=False, whole=True)
        count = self.keepalive_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 127:
            raise ValueError(f"'keepalive_count' must be an int from 1 to 127 (probes); got {count!r}")
        ut = self.user_timeout_ms
        if ut is not None and (isinstance(ut, bool) or not isinstance(ut, int) or not 0 <= ut <= 2**31 - 1):
            raise ValueError(f"'user_timeout_ms' must be an int of milliseconds >= 0 (0 = kernel default) "
                             f"or None; got {ut!r}")
        _check_seconds("heartbeat_interval", self.heartbeat_interval, allow_none=True)
        _check_seconds("dead_after", self.dead_after, allow_none=False)
        if self.heartbeat_interval is not None and self.dead_after <= self.heartbeat_interval:
            raise ValueError(f"'dead_after' must be greater than heartbeat_interval ({self.heartbeat_interval!r}) "
                             f"so at least one PING can be answered; got {self.dead_after!r}")
        write = self.timeouts.write
        if ut and write is not None and write * 1000 >= ut:
            raise ValueError(f"timeouts.write ({write:g} s) must be shorter than user_timeout_ms ({ut} ms): Linux "
                             "applies TCP_USER_TIMEOUT to zero-window probes too, so the kernel would report a "
                             "peer that stopped reading as ETIMEDOUT before SendStalled could; lower the write "
                             "timeout or raise user_timeout_ms")
        mp = self.max_payload
        if isinstance(mp, bool) or not isinstance(mp, int) or not framing.SEQ.size <= mp <= framing.MAX_UINT32:
            raise ValueError(f"'max_payload' must be an int from {framing.SEQ.size} to {framing.MAX_UINT32} "
                             f"bytes; got {mp!r}")
        object.__setattr__(self, "keepalive_idle", int(self.keepalive_idle))
        object.__setattr__(self, "keepalive_interval", int(self.keepalive_interval))

    def replace(self, **changes: Any) -> "RobustConfig":
        return dataclasses.replace(self, **changes)

    def bounds(self) -> dict[str, float | None]:
        """The detection bounds these settings imply, in seconds (None = unbounded or off).

        Scenarios quote these instead of restating arithmetic:
        ``frozen_peer`` a silent peer while we wait, ``stuck_reply`` a live
        peer that never replies, ``send_stall`` a peer that stopped reading,
        ``idle_peer_gone`` a vanished peer between messages (keepalive),
        ``unacked_data`` a vanished peer with our data in flight (user timeout),
        ``connect`` an unanswered SYN.
        """
        t = self.timeouts
        frozen = self.dead_after + self.heartbeat_interval if self.heartbeat_interval is not None else t.read
        keep = (self.keepalive_idle + self.keepalive_interval * self.keepalive_count) if self.keepalive else None
        return {
            "connect": t.connect,
            "frozen_peer": frozen,
            "stuck_reply": t.read,
            "send_stall": t.write,
            "idle_peer_gone": keep,
            "unacked_data": self.user_timeout_ms / 1000 if self.user_timeout_ms else None,
        }


@dataclasses.dataclass
class ConnectionStats:
    """Counters for tests and benchmarks: what the socket calls actually did."""

    bytes_sent: int = 0
    bytes_received: int = 0
    send_calls: int = 0
    partial_sends: int = 0  # send() accepted fewer bytes than offered
    recv_calls: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    last_send_progress: float | None = None  # clock() when the kernel last took bytes in a stalled send


def _wait_fd(poller: Any, fd: int, timeout: float | None) -> int:
    """poll() once; returns the revents mask (0 on timeout)."""
    ms = -1 if timeout is None else max(0, math.ceil(timeout * 1000))
    for _fd, revents in poller.poll(ms):
        return revents
    return 0



def resolve(host: str, port: int, timeout: float | None) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection to ``host:port``, bounded by ``timeout`` seconds.

    ``getaddrinfo`` takes no timeout and cannot be interrupted: a silent resolver holds it for
    its own timeouts (glibc: 5 s per attempt, 2 attempts), far past a connect deadline. So it
    runs in a daemon thread and this waits at most ``timeout``; past that it raises
    ``socket.timeout`` (phase "resolve": :class:`~lab.sockets.errors.NameUnresolvable`) and
    leaves the thread to finish on its own, its answer discarded. An address literal is
    resolved in place, without the thread. A failure of the resolver is its ``socket.gaierror``.
    """
    numeric = socket.AI_NUMERICHOST
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, numeric)
    except socket.gaierror:
        pass  # a name, not an address: ask the resolver
    except UnicodeError as exc:
        # The idna codec refuses the name before any resolver sees it (a label empty or over 63
        # characters): no such name can exist. A gaierror, so the caller reports NameUnresolvable.
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} is not a valid host name: {exc}") from exc
    done = threading.Event()
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        raise socket.timeout(f"resolving {host!r} took longer than {timeout:g} s")
    found = result[0]
    if isinstance(found, BaseException):
        raise found
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host!r}")
    return found


def _connect_first(addresses: list[tuple[Any, ...]], deadline: float | None,
                   source_address: tuple[str, int] | None) -> socket.socket:
    """Connect to the first of ``addresses`` that answers, all within ``deadline`` (monotonic)."""
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise socket.timeout("connect deadline passed")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    assert last is not None
    raise last

class RobustConnection:
    """One framed TCP (or socketpair) conversation with deadlines on every wait. See the module docstring.

    Build one with :meth:`connect`, or wrap an already connected socket
    (``RobustConnection(sock, config)``, e.g. one end of ``socket.socketpair()``).
    When it gives up (ConnectionLost, PeerClosed, SendStalled, ProtocolError, a
    peer that heartbeats declared dead, a kernel timeout) the connection is
    broken: its socket is closed there and then, so the peer sees our FIN and no
    keepalive probe goes on for a conversation nobody listens to, and every later
    call raises that same error. After a read or idle deadline (PeerUnresponsive
    with detected_by "read-deadline" or "idle-deadline": the peer may be alive,
    only slow or quiet) it stays usable, the stream still aligned, so a caller may
    wait again.
    """

    def __init__(self, sock: socket.socket, config: RobustConfig | None = None, *,
                 peer: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config if config is not None else RobustConfig()
        self._sock = sock
        self._fd = sock.fileno()
        self.peer = peer if peer is not None else _peername(sock)
        self._clock = clock
        self._decoder = Decoder(max_payload=self.config.max_payload)
        self._frames: collections.deque[Frame] = collections.deque()
        self._rbuf = bytearray(_RECV_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._ctl_out = bytearray()  # PING/PONG bytes waiting for a frame boundary and a writable socket
        self._seq = itertools.count(1)
        self._nonce = itertools.count(1)
        self._broken: LabError | None = None
        self._write_shut = False
        self._closed = False
        self._awaiting_ack = False  # sent bytes since the peer last said anything: decides ETIMEDOUT's detector
        self.stats = ConnectionStats()
        # Told of each heartbeat as it happens ("PING"/"PONG", nonce): the lab's timeline shows them.
        self.heartbeat_observer: Callable[[str, int], None] | None = None
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)
        with translating("connect", peer=self.peer):
            self._apply_options()
            sock.setblocking(False)

    # -- setup -------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, host: str, port: int, config: RobustConfig | None = None, *,
                source_address: tuple[str, int] | None = None) -> "RobustConnection":
        """Connect like ``socket.create_connection`` within ``timeouts.connect``; errors are lab errors.

        Refused ⇒ ConnectRefused (immediately); no answer ⇒ ConnectTimeout. The name is resolved
        within the same deadline (:func:`resolve`): a resolver that fails or says nothing ⇒
        NameUnresolvable, and the time it took is gone from what the SYNs get.
        """
        config = config if config is not None else RobustConfig()
        peer = f"{host}:{port}"
        limit = config.timeouts.connect
        deadline = None if limit is None else time.monotonic() + limit
        with translating("resolve", peer=peer):
            addresses = resolve(host, port, limit)
        with translating("connect", peer=peer):
            sock = _connect_first(addresses, deadline, source_address)
        try:
            return cls(sock, config, peer=peer)
        except BaseException:
            sock.close()
            raise

    def _apply_options(self) -> None:
        sock, cfg = self._sock, self.config
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # a socketpair: no TCP options to set
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(cfg.nodelay))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(cfg.keepalive))
        if cfg.keepalive:
            # getattr: the per-socket knobs are Linux (and recent macOS) only.
            for name, value in (("TCP_KEEPIDLE", cfg.keepalive_idle), ("TCP_KEEPINTVL", cfg.keepalive_interval),
                                ("TCP_KEEPCNT", cfg.keepalive_count)):
                if hasattr(socket, name):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        if cfg.user_timeout_ms is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, cfg.user_timeout_ms)

    @property
    def socket(self) -> socket.socket:
        """The underlying socket, for setting extra options (e.g. SO_SNDBUF) in tests. Do not read or write it."""
        return self._sock

    @property
    def closed(self) -> bool:
        return self._closed

    # -- public operations -------------------------------------------------------------------------

    def send_message(self, body: bytes, *, seq: int | None = None) -> int:
        """Send one DATA frame; returns its sequence number once the kernel has taken every byte.

        That is *not* delivery: only the ECHO says the peer got it (use
        :meth:`request` or :meth:`await_echo`). Raises SendStalled if the
        peer stops reading for ``timeouts.write``.
        """
        self._check_usable()
        if self._write_shut:
            raise RuntimeError("send_message() after shutdown_write(): this side already said it is done sending")
        if seq is None:
            seq = next(self._seq)
        payload_len = framing.SEQ.size + len(body)
        if payload_len > self.config.max_payload:
            raise ValueError(f"message of {len(body)} bytes exceeds max_payload={self.config.max_payload} "
                             f"(minus {framing.SEQ.size} for the sequence number)")
        head = framing.HEADER.pack(payload_len, FrameType.DATA) + framing.SEQ.pack(seq)
        if len(body) <= _JOIN_LIMIT:
            self._send_all(head + body)  # one small copy beats a sendmsg with two buffers
        else:
            self._send_all(head, body)  # two buffers (sendmsg): a big body is never copied
        return seq

    def await_echo(self, seq: int, body: bytes | None = None, *, timeout: float | None = -1.0) -> bytes:
        """Wait for ECHO(seq); if ``body`` is given, the echo must equal it. Returns the echoed body."""
        frame = self._await(lambda f: f.type is FrameType.ECHO and f.seq == seq, timeout)
        if body is None:
            return frame.body
        # endswith() compares in place (memcmp): slicing the body out first would copy 1 MiB to compare it.
        payload = frame.payload
        if len(payload) != framing.SEQ.size + len(body) or not payload.endswith(body):
            self._break(ProtocolError(
                f"echo of seq {seq} differs from what was sent ({len(frame.payload) - framing.SEQ.size} bytes "
                f"back, {len(body)} sent)", phase="read", peer=self.peer))
        return bytes(body)  # equal to the echo; bytes(b) of a bytes object is b itself, no copy

    def request(self, body: bytes, *, timeout: float | None = -1.0) -> bytes:
        """Send DATA(body) and return the body of the matching ECHO, checked equal to what was sent."""
        seq = self.send_message(body)
        return self.await_echo(seq, body, timeout=timeout)

    def recv_frame(self, *, timeout: float | None = -1.0) -> Frame:
        """The next frame from the peer that is not a heartbeat (PINGs are answered, PONGs absorbed).

        ``timeout`` defaults to ``timeouts.read``; None waits without a
        read deadline (heartbeats, if on, still bound a silent wait).
        """
        return self._await(lambda f: True, timeout)

    def wait_message(self, *, timeout: float | None = -1.0) -> Frame:
        """The next frame the peer sends on its own initiative, with nothing asked of it.

        A quiet peer is not a failure until it has been quiet for ``timeouts.idle``
        (the default ``timeout``): then PeerUnresponsive(detected_by="idle-deadline").
        Heartbeats still run, so a peer that is gone (not just quiet) is found after
        ``dead_after``, long before the idle deadline.
        """
        if timeout is not None and timeout < 0:
            timeout = self.config.timeouts.idle
        return self._await(lambda f: True, timeout, detector="idle-deadline")

    def hello(self, session_id: bytes, *, timeout: float | None = -1.0) -> int:
        """Introduce a session; returns the last sequence number the server has delivered for it (0 if new)."""
        self._check_usable()
        self._send_all(framing.encode_hello_request(session_id))
        frame = self._await(lambda f: f.type is FrameType.HELLO, timeout)
        if len(frame.payload) != framing.SEQ.size:
            self._break(ProtocolError(f"HELLO reply has {len(frame.payload)} bytes, expected {framing.SEQ.size}",
                                      phase="read", peer=self.peer))
        return frame.seq

    def ping(self, *, timeout: float | None = -1.0) -> float:
        """Round trip one PING; returns the seconds until its PONG came back."""
        self._check_usable()
        nonce = next(self._nonce)
        started = self._clock()
        self._send_all(framing.encode_ping(nonce))
        self.stats.pings_sent += 1
        self._observe("PING", nonce)
        self._await(lambda f: f.type is FrameType.PONG and f.seq == nonce, timeout, want_pongs=True)
        return self._clock() - started

    def shutdown_write(self) -> None:
        """Half-close: tell the peer we are done sending (FIN) but keep reading. Heartbeats stop too."""
        self._check_usable()
        if self._write_shut:
            return
        self._flush_control()
        with translating("write", peer=self.peer):
            self._sock.shutdown(socket.SHUT_WR)
        self._write_shut = True
        self._ctl_out.clear()

    def read_until_eof(self, *, timeout: float | None = -1.0) -> list[Frame]:
        """Every frame the peer sends until it closes cleanly (after :meth:`shutdown_write`, typically).

        ``timeout`` (default ``timeouts.read``) bounds the whole wait. EOF
        inside a frame raises IncompleteMessage: nothing truncated is returned.
        """
        frames = list(self._frames)
        self._frames.clear()
        deadline = self._deadline(timeout)
        while True:
            try:
                remaining = None if deadline is None else max(0.0, deadline - self._clock())
                frames.append(self._await(lambda f: True, remaining))
            except PeerClosed:
                return frames

    def abort(self) -> None:
        """Close with SO_LINGER {1, 0}: the kernel discards unsent data and sends RST. For demonstrations."""
        if self._closed:
            return
        try:
            if self._sock.fileno() != -1:  # not already released when the connection gave up
                with translating("close", peer=self.peer):
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        finally:
            self.close()

    def close(self) -> None:
        """Release the socket. Idempotent. Any unsent heartbeat bytes are dropped."""
        if self._closed:
            return
        self._closed = True
        try:
            self._poller.unregister(self._fd)
        except (KeyError, ValueError):
            pass
        with translating("close", peer=self.peer):
            self._sock.close()

    def __enter__(self) -> "RobustConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("broken" if self._broken else "open")
        return f"<RobustConnection {self.peer} {state}>"

    # -- internals ---------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("the connection is closed")
        if self._broken is not None:
            raise self._broken

    def _break(self, error: LabError) -> None:
        self._give_up(error)
        raise error

    def _note_failure(self, exc: LabError) -> None:
        # Our own read and idle deadlines leave the stream aligned and the peer
        # perhaps alive, so the caller may wait again; anything else (a peer
        # the heartbeats declared dead, kernel timeouts included) ends it.
        if isinstance(exc, PeerUnresponsive) and exc.errno is None and exc.detected_by != "heartbeat":
            return
        if exc.peer is None:
            exc.peer = self.peer
        self._give_up(exc)

    def _give_up(self, error: LabError) -> None:
        """A terminal error: remember it for every later call and release the socket now.

        Keeping the socket after giving up would keep the conversation alive on
        the wire (keepalive probes answered for nobody, our FIN only when the
        owner gets round to close()). Idempotent, and it never replaces the
        error being raised. The fd stays registered with the poller until
        :meth:`close`: the wait loops' clean-up still modifies it, and a broken
        connection is never polled again.
        """
        if self._broken is None:
            self._broken = error
        try:
            self._sock.close()
        except OSError:
            pass  # the caller is told what went wrong with the peer, not that a release failed

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is not None and timeout < 0:  # -1: "the configured read timeout"
            timeout = self.config.timeouts.read
        return None if timeout is None else self._clock() + timeout

    def _raise_translated(self, phase: Phase, **facts: Any) -> NoReturn:
        """Re-raise the OSError being handled as its lab error, through :func:`translating`.

        Hot-path calls enter ``translating`` only once they have failed: the
        context manager costs a few microseconds per entry, a third of the
        Python overhead of a 64-byte request. The mapping (and the chaining)
        is still translating's, never ours.
        """
        with translating(phase, peer=self.peer, kernel_timeout_detector=self._kernel_detector(), **facts):
            raise

    def _kernel_detector(self) -> str:
        # ETIMEDOUT does not say which timer fired. TCP_USER_TIMEOUT only
        # runs while our data is unacknowledged; keepalive only while idle.
        cfg = self.config
        user_timeout = bool(cfg.user_timeout_ms)
        if user_timeout and (self._awaiting_ack or not cfg.keepalive):
            return "user-timeout"
        return "keepalive"

    def _send_all(self, *parts: bytes | bytearray | memoryview) -> None:
        """Push one whole frame (given as consecutive parts) into the kernel, or raise SendStalled.

        Pending heartbeat bytes go first: control frames travel between whole
        frames only, never inside one. ``sent``/``total`` in SendStalled
        count the frame's own bytes.
        """
        first = 0
        if not self._ctl_out and len(parts) == 1:
            # Fast path for the common case: one buffer that the kernel takes whole.
            try:
                first = self._sock.send(parts[0])
            except BlockingIOError:
                pass
            except OSError:
                self._raise_translated("write")
            self.stats.send_calls += 1
            self.stats.bytes_sent += first
            self._awaiting_ack = True
            if first == len(parts[0]):
                return
            if first:
                self.stats.partial_sends += 1
        control = len(self._ctl_out)
        bufs = [memoryview(p).cast("B") for p in (bytes(self._ctl_out), *parts) if len(p)]
        self._ctl_out.clear()
        total = sum(len(b) for b in bufs)
        sent = first
        index, offset = 0, first  # first unsent byte: bufs[index][offset]
        write_timeout = self.config.timeouts.write
        last_progress = self._clock()
        sock = self._sock
        try:
            while sent < total:
                n = 0
                try:
                    if index == len(bufs) - 1:
                        n = sock.send(bufs[index][offset:])
                    else:
                        n = sock.sendmsg([bufs[index][offset:], *bufs[index + 1:]])
                except BlockingIOError:
                    pass  # buffer full: wait below
                except OSError:
                    self._raise_translated("write", sent=max(0, sent - control), total=total - control,
                                           window_closed=_all_acked(sock))
                self.stats.send_calls += 1
                if n:
                    if n < total - sent:
                        self.stats.partial_sends += 1
                    sent += n
                    self.stats.bytes_sent += n
                    self._awaiting_ack = True
                    last_progress = self.stats.last_send_progress = self._clock()
                    while n:
                        left = len(bufs[index]) - offset
                        if n >= left:
                            n -= left
                            index, offset = index + 1, 0
                        else:
                            offset += n
                            n = 0
                    continue
                wait = None
                if write_timeout is not None:
                    wait = last_progress + write_timeout - self._clock()
                    if wait <= 0:
                        frame_sent, frame_total = max(0, sent - control), total - control
                        self._break(SendStalled(
                            f"send made no progress for {write_timeout:g}s after {frame_sent} of {frame_total} "
                            f"bytes ({self.peer}): the peer is not reading", sent=frame_sent, total=frame_total,
                            phase="write", peer=self.peer))
                # Everything we sent is ACKed yet the kernel takes no more: the peer's
                # window is closed. Remembered so that the kernel's ETIMEDOUT for its
                # zero-window probes (TCP_USER_TIMEOUT) is reported as what it is.
                window_closed = _all_acked(sock)
                # Keep reading while we wait: a peer blocked sending to us would
                # otherwise never drain our data (both buffers full, deadlock).
                # After the peer's EOF, POLLIN stays set forever: stop asking.
                events = select.POLLOUT if self._decoder.eof else select.POLLIN | select.POLLOUT
                self._poller.modify(self._fd, events)
                try:
                    revents = _wait_fd(self._poller, self._fd, wait)
                finally:
                    self._poller.modify(self._fd, select.POLLIN)
                if revents & select.POLLERR:
                    # A pending socket error ends the send: report it in the write phase.
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        try:
                            raise OSError(err, os.strerror(err))
                        except OSError:
                            self._raise_translated("write", sent=max(0, sent - control), total=total - control,
                                                   window_closed=window_closed)
                if revents & (select.POLLIN | select.POLLHUP | select.POLLERR) and not self._decoder.eof:
                    self._recv_available()
        except LabError as exc:
            self._note_failure(exc)
            raise

    def _flush_control(self) -> None:
        if self._ctl_out:
            self._send_all()

    def _recv_available(self) -> int:
        """recv what the kernel holds, without blocking. Returns bytes read; EOF is fed to the decoder."""
        got = 0
        while True:
            try:
                n = self._sock.recv_into(self._rbuf)
            except BlockingIOError:
                return got
            except OSError:
                self._raise_translated("read")
            self.stats.recv_calls += 1
            if n == 0:
                self._decoder.receive_data(b"")
                return got
            got += n
            self.stats.bytes_received += n
            self._awaiting_ack = False
            decoder = self._decoder
            decoder.receive_data(self._rview[:n])
            # Mid-way through a big frame the rest is usually already queued in the
            # kernel: read on rather than pay for a poll() per chunk. At a frame
            # boundary an immediate recv would mostly just hit EAGAIN.
            if n < len(self._rbuf) and (decoder.at_boundary or decoder.bytes_needed() < 65536):
                return got

    def _take_queued(self, match: Callable[[Frame], bool]) -> Frame | None:
        for i, frame in enumerate(self._frames):
            if match(frame):
                del self._frames[i]
                return frame
        return None

    def _observe(self, what: str, nonce: int) -> None:
        if self.heartbeat_observer is not None:
            self.heartbeat_observer(what, nonce)

    def _take(self, match: Callable[[Frame], bool], want_pongs: bool) -> Frame | None:
        """A matching frame from the queue or the decoder; answers PINGs; queues the rest."""
        frame = self._take_queued(match)
        if frame is not None:
            return frame
        try:
            while True:
                event = self._decoder.next_event()
                if event is NEED_DATA:
                    return None
                if event is CLOSED:
                    self._break(PeerClosed(f"the peer closed the connection ({self.peer})",
                                           phase="read", peer=self.peer))
                assert isinstance(event, Frame)
                if event.type is FrameType.PING:
                    if not self._write_shut:
                        self._ctl_out += framing.encode_pong(event.seq)
                    continue
                if event.type is FrameType.PONG:
                    self.stats.pongs_received += 1
                    self._observe("PONG", event.seq)
                    if not (want_pongs and match(event)):
                        continue  # a heartbeat's answer: its arrival was all that mattered
                if match(event):
                    return event
                self._frames.append(event)
        except LabError as exc:  # IncompleteMessage, FrameTooLarge, BadFrame from the decoder
            self._note_failure(exc)
            raise

    def _await(self, match: Callable[[Frame], bool], timeout: float | None, *,
               want_pongs: bool = False, detector: str = "read-deadline") -> Frame:
        """Wait for a frame that ``match``es, with the read deadline and heartbeats. The core wait loop."""
        # Frames that arrived before a failure are still handed out: nothing received is lost.
        frame = self._take_queued(match)
        if frame is not None:
            return frame
        self._check_usable()
        frame = self._take(match, want_pongs)
        if frame is not None:
            return frame
        cfg = self.config
        clock = self._clock
        start = clock()
        deadline = self._deadline(timeout)
        heartbeat = cfg.heartbeat_interval if not self._write_shut else None
        last_life = start  # silence is counted from the later of: the wait began, the last byte arrived
        next_ping = start + heartbeat if heartbeat is not None else math.inf
        poller, fd = self._poller, self._fd
        writing = False
        try:
            while True:
                now = clock()
                if heartbeat is not None:
                    if now - last_life >= cfg.dead_after:
                        raise PeerUnresponsive(
                            f"no byte from {self.peer} for {now - last_life:.2f}s despite PINGs every "
                            f"{heartbeat:g}s (dead_after={cfg.dead_after:g}s)", detected_by="heartbeat",
                            after=now - start, phase="read", peer=self.peer)
                    if now >= next_ping:
                        nonce = next(self._nonce)
                        self._ctl_out += framing.encode_ping(nonce)
                        self.stats.pings_sent += 1
                        self._observe("PING", nonce)
                        next_ping = now + heartbeat
                if deadline is not None and now >= deadline:
                    what = "the read deadline" if detector == "read-deadline" else "the idle deadline"
                    raise PeerUnresponsive(
                        f"no message from {self.peer} within {what} ({now - start:.2f}s)",
                        detected_by=detector, after=now - start, phase="read", peer=self.peer)
                wait = math.inf
                if heartbeat is not None:
                    wait = min(next_ping, last_life + cfg.dead_after) - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                want_write = bool(self._ctl_out)
                if want_write != writing:
                    poller.modify(fd, select.POLLIN | select.POLLOUT if want_write else select.POLLIN)
                    writing = want_write
                revents = _wait_fd(poller, fd, None if wait == math.inf else wait)
                if revents & select.POLLOUT and self._ctl_out:
                    self._send_control()
                if revents & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    if self._recv_available() or self._decoder.eof:
                        last_life = clock()
                        if heartbeat is not None:
                            next_ping = last_life + heartbeat
                    # At EOF _take returns a frame or raises (PeerClosed, IncompleteMessage).
                    frame = self._take(match, want_pongs)
                    if frame is not None:
                        return frame
        except LabError as exc:
            self._note_failure(exc)
            raise
        finally:
            if writing:
                poller.modify(fd, select.POLLIN)

    def _send_control(self) -> None:
        """Send queued PING/PONG bytes without waiting (called only when poll said writable)."""
        try:
            n = self._sock.send(self._ctl_out)
        except BlockingIOError:
            return
        except OSError:
            self._raise_translated("write")
        self.stats.send_calls += 1
        self.stats.bytes_sent += n
        if n:
            self._awaiting_ack = True
        if n < len(self._ctl_out):
            # A heartbeat frame may now be half sent: the rest must go before any other frame,
            # which _send_all guarantees by prepending _ctl_out.
            self.stats.partial_sends += 1
        del self._ctl_out[:n]


_TCP_INFO = struct.Struct("8B5I")  # struct tcp_info up to tcpi_unacked (Linux)


def _all_acked(sock: socket.socket) -> bool:
    """True when the kernel has no unacknowledged data on ``sock`` (Linux TCP_INFO); False if unknown."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO.size)
    except OSError:
        return False
    if len(info) < _TCP_INFO.size:
        return False
    return _TCP_INFO.unpack_from(info)[12] == 0  # tcpi_unacked: segments in flight


def _peername(sock: socket.socket) -> str | None:
    try:
        name = sock.getpeername()
    except OSError:  # not connected / a socketpair: no printable peer, not an error
        return None
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    return str(name) or None


__all__ = ["RobustConfig", "RobustConnection", "ConnectionStats"]
