"""What both lab servers share: the listener, the delivery log, behaviour, stats, events, stop.

A concrete server (see :mod:`lab.server.threaded` and :mod:`lab.server.selecting`)
adds only its way of waiting for sockets. Life cycle::

    server = ThreadedServer("127.0.0.1", 0, control_port=0, state_dir=tmp)
    server.start()              # bound and listening when it returns; runs in background threads
    server.port, server.stats(), server.behave(mode="abort", after=2)
    server.stop()               # returns within about a second, connections closed

``emit`` receives one dict per event (listening, accepted, hello, delivered,
duplicate, rejected, closed, error); the CLI prints them as JSON lines.

A connection that ends because its bytes broke the protocol is also kept in
``server.rejections`` (the control command ``rejections``), whichever server
implementation served it: both end every connection through :meth:`BaseServer._finish`.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import resource
import socket
import struct
import threading
import time
from typing import Any, Callable, ClassVar

from lab.sockets.errors import LabError, translating
from lab.sockets.framing import DEFAULT_MAX_PAYLOAD
from lab.server import binding
from lab.server.behaviour import Behaviour
from lab.server.log import DeliveryLog, SharedDeliveryLog
from lab.server.protocol import ServerConnection
from lab.server.stats import Rejections, ServerStats

EventSink = Callable[[dict[str, Any]], None]
RECV_SIZE = 65536
POLL_INTERVAL = 0.1
"""How often blocked threads look up to check for stop or a behaviour change: bounds stop() latency."""
ACCEPT_PAUSE = 0.1
"""After accept() fails for want of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), stop accepting this long.
The pending connection stays in the backlog, so the listener stays readable: retrying at once would spin
at 100 % CPU until a descriptor frees up. Ten tries a second cost next to nothing."""
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the kernel sends RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close_gently(sock: socket.socket) -> None:
    """FIN after everything queued; errors here only mean the peer is already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def peer_name(addr: Any) -> str:
    try:
        return f"{addr[0]}:{addr[1]}"
    except (TypeError, IndexError):
        return str(addr)


class BaseServer(abc.ABC):
    impl: ClassVar[str]

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, control_port: int | None = None,
                 state_dir: str | os.PathLike[str] | None = None, backlog: int = 128,
                 behaviour: Behaviour | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 emit: EventSink | None = None, poll_interval: float = POLL_INTERVAL,
                 shared_log: bool = False) -> None:
        if shared_log and state_dir is None:
            raise ValueError("shared_log=True follows a delivery log in a state dir: give state_dir too")
        self.shared_log = shared_log
        self.host = host
        self._requested_port = port
        self._requested_control_port = control_port
        self.state_dir = state_dir
        self.backlog = backlog
        self.max_payload = max_payload
        self.poll_interval = poll_interval
        self._sink = emit
        self._initial_behaviour = behaviour or Behaviour()
        self._behaviour = self._initial_behaviour
        self._behaviour_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._ids = iter(range(1, 2**63))
        self._ids_lock = threading.Lock()
        self.stats_ = ServerStats()
        self.rejections = Rejections()
        self.log: DeliveryLog | None = None
        self._listener: socket.socket | None = None
        self._control: Any = None
        self._started = False
        self._start_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)   # what reset() restores

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> "BaseServer":
        if self._started:
            raise RuntimeError("this server was already started; make a new one to restart")
        self._started = True
        self.log = self._make_log()
        try:
            # A restarted server must get its port back while old connections sit in TIME_WAIT.
            listener = binding.reuseaddr(self.host, self._requested_port, self.backlog)
        except BaseException:
            self.log.close()
            raise
        self._listener = listener
        if self._requested_control_port is not None:
            from lab.server.control import ControlServer
            self._control = ControlServer(self, self.host, self._requested_control_port)
            self._control.start()
        self._start()
        self.emit("listening", host=self.host, port=self.port, control_port=self.control_port,
                  backlog=self.backlog, state_dir=str(self.state_dir) if self.state_dir else None,
                  behaviour=self.behaviour().as_dict())
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close every connection, join every thread; idempotent."""
        if not self._started or self._stopping.is_set():
            self._stopped.wait(timeout)
            return
        self._stopping.set()
        deadline = time.monotonic() + timeout
        if self._control is not None:
            self._control.stop(timeout=max(deadline - time.monotonic(), 0.1))
        self._stop(deadline)
        if self._listener is not None:
            self._listener.close()
        if self.log is not None:
            self.log.close()
        self.emit("stopped")
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (the CLI's main thread sits here)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> "BaseServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_log(self) -> DeliveryLog:
        """The delivery log this server records into (the forking server shares one between processes).

        ``shared_log``: one file that other servers append to as well (the failover pair, each on a
        host of its own, mounts one volume), so a session's HELLO on either says what both delivered.
        """
        if self.shared_log:
            return SharedDeliveryLog(self.state_dir)   # type: ignore[arg-type]  # checked in __init__
        return DeliveryLog(self.state_dir)

    @abc.abstractmethod
    def _start(self) -> None:
        """Begin serving on self._listener in background threads."""

    @abc.abstractmethod
    def _stop(self, deadline: float) -> None:
        """Make the background threads end, closing their sockets, by ``deadline`` (monotonic)."""

    # -- what the outside sees ----------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() the server first"
        return self._listener.getsockname()[1]

    @property
    def control_port(self) -> int | None:
        return self._control.port if self._control is not None else None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def behaviour(self) -> Behaviour:
        return self._behaviour

    def behave(self, **changes: Any) -> Behaviour:
        with self._behaviour_lock:
            new = self._behaviour.replace(**changes)
            if "nofile" in changes:
                self._apply_nofile(new.nofile)
            self._behaviour = new
        self._behaviour_changed()
        self.emit("behaviour", **self._behaviour.as_dict())
        return self._behaviour

    def reset(self) -> None:
        """Back to the start-up behaviour, with connection counters zeroed. Deliveries (and their
        digests) are kept: forgetting them would break exactly-once, and the grading judge asks
        after a run that reset. Rejections are kept too (the judge selects them by time)."""
        with self._behaviour_lock:
            self._behaviour = self._initial_behaviour
            self._apply_nofile(self._behaviour.nofile)
        self.stats_.reset()
        self._behaviour_changed()

    def _apply_nofile(self, soft: int | None) -> None:
        """Set this process's soft RLIMIT_NOFILE (None: back to the start-up one); the hard limit stays.

        Lowering it below the descriptors already open is allowed: those stay, new ones fail with
        EMFILE. Raising it back needs no privilege while it stays within the hard limit.
        """
        start_soft, hard = self._start_nofile
        wanted = start_soft if soft is None else soft
        if hard != resource.RLIM_INFINITY and wanted > hard:
            raise ValueError(f"behaviour 'nofile' {wanted} is above this process's hard limit {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    def _behaviour_changed(self) -> None:
        """Hook: a server that sleeps in a selector wakes up here."""

    def stats(self) -> dict[str, Any]:
        assert self.log is not None, "start() the server first"
        return {"impl": self.impl, "port": self.port, "behaviour": self.behaviour().as_dict(),
                **self.stats_.snapshot(), **self.log.snapshot()}

    # -- for the concrete servers ---------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        if self._sink is not None:
            self._sink({"event": event, "impl": self.impl, "t": round(time.time(), 6), **fields})

    def _accept_if_accepting(self) -> tuple[socket.socket, Any] | None:
        """accept() one pending connection, or None if the behaviour says not to accept (or stopping).

        The check and the accept() share the behaviour lock: once ``behave(accepting=False)`` has
        returned, no connection is taken, not even one that was already waiting when it was called
        and that a thread just past its check would otherwise accept (the backlog-full scenario
        counts the server's accepts while its queue fills). Call it on a listener that select()
        found readable: the lock is held only for an accept() that does not wait.
        """
        assert self._listener is not None
        with self._behaviour_lock:
            if not self._behaviour.accepting or self._stopping.is_set():
                return None
            taken = self._listener.accept()
            # Counted under the same lock: an accept and its count are one event, so a reader of
            # the stats just after behave(accepting=False) returned never sees a count still to come.
            self.stats_.opened()
            return taken

    def _next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def _new_connection(self, sock: socket.socket, addr: Any) -> ServerConnection:
        conn_id = self._next_id()   # counted as opened when it was accepted (_accept_if_accepting)
        self.emit("accepted", conn=conn_id, peer=peer_name(addr))
        assert self.log is not None
        return ServerConnection(conn_id, self.log, self.behaviour, max_payload=self.max_payload, emit=self.emit,
                                peer=peer_name(addr))

    def _serve_blocking(self, sock: socket.socket, core: ServerConnection, peer: str, *,
                        stopping: Callable[[], bool], pause: Callable[[float], object]) -> None:
        """One connection on a blocking socket, to its end: the loop a thread per connection and a
        process per connection share (``stopping`` says the server is shutting down; ``pause``
        waits while a stop_reading behaviour holds the reads back)."""
        try:
            sock.settimeout(self.poll_interval)
            core.process()
            self._flush_blocking(sock, core, peer, stopping)
            while core.closing is None and not stopping():
                if not core.wants_read:
                    # stop_reading: not calling recv is the point; the peer's sends fill our buffer.
                    pause(self.poll_interval)
                else:
                    with translating("read", peer=peer):
                        try:
                            data = sock.recv(RECV_SIZE)
                        except TimeoutError:
                            continue
                    core.receive_data(data)
                core.process()
                self._flush_blocking(sock, core, peer, stopping)
        except LabError as exc:
            core.fail(exc)
        except Exception as exc:  # a bug must cost one connection, not the server
            self.emit("error", **self.stats_.error(core.conn_id, exc))
        finally:
            self._finish(sock, core)

    @staticmethod
    def _flush_blocking(sock: socket.socket, core: ServerConnection, peer: str, stopping: Callable[[], bool]) -> None:
        data = memoryview(core.data_to_send())
        sent = 0
        while sent < len(data):
            with translating("write", peer=peer, sent=sent, total=len(data)):
                try:
                    # send (not sendall): a timeout then means nothing was sent, so no byte is lost or doubled.
                    sent += sock.send(data[sent:])
                except TimeoutError:
                    if stopping():
                        return
                    continue

    def _finish(self, sock: socket.socket, core: ServerConnection) -> None:
        """Close ``sock`` as the core decided and account for it; call exactly once per connection."""
        how = core.closing or "stopped"
        if core.error is not None:
            record = self.stats_.error(core.conn_id, core.error)
            self.emit("error", **record)
        # A protocol error always ends in close_gently: FIN (RST if the peer's bytes are still unread).
        rejection = core.rejection(answer="closed the connection")
        if rejection is not None:
            self.emit("rejected", **self.rejections.add({"conn": core.conn_id, **rejection}))
        if how == "abort":
            abort(sock)
        else:
            close_gently(sock)
        self.stats_.ended(how)
        self.emit("closed", conn=core.conn_id, how=how, messages=core.messages)


__all__ = ["BaseServer", "EventSink", "abort", "close_gently", "peer_name", "RECV_SIZE", "POLL_INTERVAL"]
