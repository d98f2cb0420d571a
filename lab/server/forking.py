"""The process-per-connection lab server: the listener forks one child per accepted connection.

This is the HOWTO's second way to serve many clients, and the one with the classic bugs:
zombie children nobody waits for, a crashed child, and the listener inherited by every
child. Here the parent only listens, forks, reaps and answers the control port; each child
serves exactly one connection with blocking sockets (short timeouts, as in the threaded
server, only to notice SIGTERM) and the same sans-IO core as the other two servers, then
exits. A child that dies (SIGKILL, a bug) takes its own connection with it and nothing else.

What crosses the process boundary, and how:

- **Deliveries** go where they always go, the state dir's JSON-lines log, which every
  process appends to (``O_APPEND``) and follows (:class:`~lab.server.log.SharedDeliveryLog`).
  A file and not a pipe to the parent because the record must be on disk before the ECHO
  (exactly-once across a crash), and because a child must see what its siblings delivered
  *at once*: a client that reconnects after its connection died asks the next child for the
  session's last seq, and that child was forked before the parent could have heard anything.
  The parent's ``stats`` and ``delivered`` read the same file. Without a state dir the server
  keeps the file in a private temporary directory, removed at stop.
- **Everything else a child reports** (its events, errors, its connection's end, protocol
  rejections, refused duplicates) goes up a pipe of its own to the parent, one JSON line
  each. The parent reads all pipes in a watcher thread, and again before it answers
  ``stats``/``rejections``/``delivered``: a child writes its report before it sends the reply
  that lets its client go on, so a question asked after that reply sees it. One pipe per
  child, so a record is never interleaved with another child's, and its EOF says the child
  is gone (the kernel closes a dead process's descriptors before it becomes a zombie).
- **Behaviour** (``behave`` on the control port, which lives in the parent) goes down
  through a small shared memory page (``mmap`` made before any fork, so every child maps the
  same page), versioned like a seqlock: a child reads it before each message exactly as the
  threaded server's handlers read the shared value, so ``behave`` applies to connections
  already open, at once.

Reaping: the parent ``waitpid``s each child by pid (``WNOHANG``) when its pipe reaches EOF,
so a zombie lives only until the watcher's next turn; there is no SIGCHLD handler, because
a handler that reaps ``-1`` would also steal the exit status of processes the embedding
program started itself (pytest, ``subprocess``), and signal handlers can only be installed
from the main thread. Stop: SIGTERM to every child (each closes its connection with a FIN
within one poll interval), SIGKILL to any still there at the deadline, then reap them all.

A parent killed with SIGKILL leaves its children serving their connections, as a crashed
sshd leaves its sessions: they are orphans that the container's PID 1 reaps. Because no
child holds the listener, the restarted parent can bind the port again at once.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import mmap
import os
import select
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.server.base import BaseServer, abort, peer_name
from lab.server.behaviour import Behaviour
from lab.server.log import DeliveryLog, SharedDeliveryLog
from lab.server.protocol import ServerConnection
from lab.server.stats import Rejections, ServerStats

CHILD_COMM = "lab-child"
"""A child's name in /proc/PID/comm (lab.inlab.agent.procfs.CHILD_COMM: the agent tells children apart by it)."""
SLOT = 4096
"""Bytes of the shared behaviour page: a version, a length and the behaviour as JSON."""
_HEADER = struct.Struct("<QI")
CHILD_EXIT_BUG = 70
"""A child's exit status when its serving code raised: EX_SOFTWARE."""
WATCH_INTERVAL = 0.05
"""How often the watcher looks for children to reap when no pipe has anything to say."""
REAPED_KEPT = 1000
KILL_WAIT = 1.0
"""How long stop() waits for SIGKILLed children to be reaped."""


class SharedBehaviour:
    """The behaviour, in a shared anonymous mapping: the parent writes it, children read it.

    The parent is the only writer (under its behaviour lock). The version is odd while a
    write is under way and moves on by two with each one; a reader copies the bytes and uses
    them only if the version was even and unchanged around the copy. A reader that finds the
    version it last parsed returns that Behaviour without parsing anything.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self._map = mmap.mmap(-1, SLOT)
        self._version = 0
        self._seen: tuple[int, Behaviour] = (-1, behaviour)
        self.publish(behaviour)

    def publish(self, behaviour: Behaviour) -> None:
        data = json.dumps(behaviour.as_dict(), separators=(",", ":")).encode("ascii")
        if len(data) > SLOT - _HEADER.size:
            raise ValueError(f"a behaviour is at most {SLOT - _HEADER.size} bytes as JSON; got {len(data)}")
        self._version += 1                                   # odd: being written
        struct.pack_into("<Q", self._map, 0, self._version)
        self._map[_HEADER.size:_HEADER.size + len(data)] = data
        struct.pack_into("<I", self._map, 8, len(data))
        self._version += 1                                   # even: complete
        struct.pack_into("<Q", self._map, 0, self._version)

    def read(self) -> Behaviour:
        for _ in range(1000):
            version = struct.unpack_from("<Q", self._map, 0)[0]
            if version == self._seen[0]:
                return self._seen[1]
            if version % 2:
                time.sleep(0)
                continue
            length = struct.unpack_from("<I", self._map, 8)[0]
            data = bytes(self._map[_HEADER.size:_HEADER.size + min(length, SLOT - _HEADER.size)])
            if struct.unpack_from("<Q", self._map, 0)[0] != version:
                continue
            try:
                behaviour = Behaviour(**json.loads(data))
            except (ValueError, TypeError):
                continue
            self._seen = (version, behaviour)
            return behaviour
        return self._seen[1]   # a writer that never finishes: keep what was last complete

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()


@dataclass(eq=False)
class _Child:
    pid: int
    conn_id: int
    peer: str
    fd: int                                   # the read end of this child's report pipe
    buf: bytearray = field(default_factory=bytearray)
    ended: bool = False                       # it reported its connection's end
    eof: bool = False                         # its pipe is closed: it has exited or is exiting


class _ChildStats(ServerStats):
    """A child's stats: each error and the connection's end are sent up to the parent."""

    def __init__(self, tell: Any) -> None:
        super().__init__()
        self._tell = tell

    def error(self, conn_id: int | None, exc: BaseException) -> dict[str, Any]:
        record = super().error(conn_id, exc)
        self._tell({"op": "error", "r": record})
        return record

    def ended(self, how: str) -> None:
        self._tell({"op": "ended", "how": how})


class _ChildRejections(Rejections):
    def __init__(self, tell: Any) -> None:
        super().__init__()
        self._tell = tell

    def add(self, record: dict[str, Any], at: float | None = None) -> dict[str, Any]:
        stamped = super().add(record, at)
        self._tell({"op": "rejected", "r": stamped})
        return stamped


class _ParentRejections(Rejections):
    """The parent's rejections: what the children reported is taken in before anyone reads them."""

    def __init__(self, pump: Any) -> None:
        super().__init__()
        self._pump = pump

    def since(self, t: float | None = None) -> list[dict[str, Any]]:
        self._pump()
        return super().since(t)


class ForkingServer(BaseServer):
    impl = "forking"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._children: dict[int, _Child] = {}
        self._children_lock = threading.RLock()
        self._pipe: int | None = None           # in a child: the write end of its report pipe
        self._child_stopping = False            # in a child: SIGTERM arrived
        self._private_dir: str | None = None
        self._shared: SharedBehaviour | None = None
        self.rejections = _ParentRejections(self._pump)
        # (pid, wait status) of the last children reaped, for tests and the curious.
        self.reaped: collections.deque[tuple[int, int]] = collections.deque(maxlen=REAPED_KEPT)

    # -- the parent ------------------------------------------------------------------------------

    def _make_log(self) -> DeliveryLog:
        state_dir = self.state_dir
        if state_dir is None:
            self._private_dir = tempfile.mkdtemp(prefix="lab-forking-")
            state_dir = self._private_dir
        log = SharedDeliveryLog(state_dir)
        log.before_read = self._pump
        return log

    def _start(self) -> None:
        assert self._listener is not None
        # accept() follows a select() that found the listener readable, but the client may be gone
        # by then: a timeout keeps that accept() (and the behaviour lock it holds) from waiting.
        self._listener.settimeout(self.poll_interval)
        self._shared = SharedBehaviour(self.behaviour())
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"forking-accept-{self.port}", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name=f"forking-reap-{self.port}", daemon=True)
        self._watcher_stop = threading.Event()
        self._watcher.start()
        self._acceptor.start()

    def _behaviour_changed(self) -> None:
        if self._shared is not None:
            with self._behaviour_lock:
                self._shared.publish(self._behaviour)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self.behaviour().accepting:
                self._stopping.wait(self.poll_interval)   # SYNs wait in the backlog, as in the others
                continue
            ready, _, _ = select.select([self._listener], [], [], self.poll_interval)
            if not ready:
                continue
            try:
                taken = self._accept_if_accepting()
            except TimeoutError:   # the client went away between select() and accept()
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                # EMFILE and friends: note it and give the process a moment to free descriptors.
                self.emit("error", **self.stats_.error(None, exc))
                self._stopping.wait(self.poll_interval)
                continue
            if taken is not None:
                self._fork_for(*taken)

    def _fork_for(self, sock: socket.socket, addr: Any) -> None:
        conn_id, peer = self._next_id(), peer_name(addr)   # counted as opened when accepted
        try:
            read_end, write_end = os.pipe()
        except OSError as exc:
            self._refuse(sock, conn_id, exc)
            return
        assert isinstance(self.log, SharedDeliveryLog)
        try:
            # No other thread may be inside the log while the child's copy of it is taken.
            with self.log._lock:
                pid = os.fork()
        except OSError as exc:   # EAGAIN: out of processes (the sandbox's pids limit); this client only
            os.close(read_end)
            os.close(write_end)
            self._refuse(sock, conn_id, exc)
            return
        if pid == 0:
            code = CHILD_EXIT_BUG
            try:
                os.close(read_end)
                code = self._child_main(sock, conn_id, peer, write_end)
            finally:
                os._exit(code)   # never back into the parent's code (or pytest's) in a child
        # The parent keeps no copy of the connection: only the child may close it, so that when
        # the child dies its kernel closes the connection (the parent's copy would keep it open).
        sock.close()
        os.close(write_end)
        os.set_blocking(read_end, False)
        with self._children_lock:
            self._children[pid] = _Child(pid, conn_id, peer, read_end)
        self.emit("accepted", conn=conn_id, peer=peer, pid=pid)
        self._wake()

    def _refuse(self, sock: socket.socket, conn_id: int, exc: OSError) -> None:
        self.emit("error", **self.stats_.error(conn_id, exc))
        abort(sock)
        self.stats_.ended("error")
        self.emit("closed", conn=conn_id, how="error", messages=0)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _watch(self) -> None:
        poller = select.poll()
        polled: set[int] = set()
        poller.register(self._wake_r, select.POLLIN)
        while not self._watcher_stop.is_set():
            with self._children_lock:
                fds = {c.fd for c in self._children.values() if not c.eof}
            for fd in fds - polled:
                poller.register(fd, select.POLLIN)
            for fd in polled - fds:
                with contextlib.suppress(KeyError, ValueError):
                    poller.unregister(fd)
            polled = fds
            with self._children_lock:
                waiting = any(c.eof for c in self._children.values())
            # A child whose pipe closed is about to be a zombie: look again soon to reap it.
            poller.poll(5 if waiting else WATCH_INTERVAL * 1000)
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._wake_r, 4096):
                    pass
            self._pump()
        poller.unregister(self._wake_r)

    def _pump(self) -> None:
        """Take in every child's reports that are waiting, and reap the children that have exited."""
        with self._children_lock:
            for child in list(self._children.values()):
                if not child.eof:
                    self._read_reports(child)
                if child.eof:
                    self._reap(child)

    def _read_reports(self, child: _Child) -> None:
        while True:
            try:
                chunk = os.read(child.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                child.eof = True
                if child.buf:   # a last line cut short by the child's death: it is not a report
                    child.buf.clear()
                return
            child.buf += chunk
            while (nl := child.buf.find(b"\n")) >= 0:
                line = bytes(child.buf[:nl])
                del child.buf[:nl + 1]
                self._take(child, line)

    def _take(self, child: _Child, line: bytes) -> None:
        try:
            msg = json.loads(line)
            op = msg["op"]
            if op == "emit":
                if self._sink is not None:
                    self._sink(msg["e"])
            elif op == "error":
                self.stats_.record(msg["r"])
            elif op == "ended":
                self.stats_.ended(str(msg["how"]))
                child.ended = True
            elif op == "rejected":
                record = dict(msg["r"])
                at = record.pop("at")
                Rejections.add(self.rejections, record, at=at)
            elif op == "refused":
                assert isinstance(self.log, SharedDeliveryLog)
                self.log.count_refused(str(msg["d"]))
        except (ValueError, KeyError, TypeError) as exc:
            self.emit("error", **self.stats_.error(child.conn_id, exc))

    def _reap(self, child: _Child) -> None:
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = child.pid, 0    # reaped by someone else (a reap-all in the embedding program)
        if pid == 0:
            return                        # not exited yet: the next turn reaps it
        del self._children[child.pid]
        os.close(child.fd)
        self.reaped.append((child.pid, status))
        if not child.ended:
            # It died without closing its connection itself (SIGKILL, or a crash): its kernel did.
            how = "killed" if os.WIFSIGNALED(status) else "exited"
            what = (f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
                    else f"exit status {os.WEXITSTATUS(status)}")
            record = self.stats_.record({"conn": child.conn_id, "error": "ChildDied", "pid": child.pid,
                                         "message": f"the child serving {child.peer} (pid {child.pid}) died: {what}"})
            self.emit("error", **record)
            self.stats_.ended(how)
            self.emit("closed", conn=child.conn_id, how=how, pid=child.pid)
        self.emit("reaped", pid=child.pid, conn=child.conn_id, status=status)

    def children(self) -> list[dict[str, Any]]:
        """The children now serving a connection: pid, connection id and peer."""
        with self._children_lock:
            return [{"pid": c.pid, "conn": c.conn_id, "peer": c.peer} for c in self._children.values() if not c.eof]

    def stats(self) -> dict[str, Any]:
        self._pump()
        return {**super().stats(), "children": self.children()}

    def _stop(self, deadline: float) -> None:
        self._acceptor.join(max(deadline - time.monotonic(), 0))
        self._terminate_children()   # again: the acceptor may have forked one since
        # Each child closes its connection and exits within a poll interval; keep a little of the
        # deadline for the ones that do not.
        soft = deadline - min(0.3, max(deadline - time.monotonic(), 0) / 3)
        while time.monotonic() < soft:
            self._pump()
            with self._children_lock:
                if not self._children:
                    break
            time.sleep(0.01)
        with self._children_lock:
            stubborn = list(self._children)
        for pid in stubborn:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        hard = time.monotonic() + KILL_WAIT
        while time.monotonic() < hard:
            self._pump()
            with self._children_lock:
                if not self._children:
                    break
            time.sleep(0.01)
        self._watcher_stop.set()
        self._wake()
        self._watcher.join(max(hard - time.monotonic(), 0.5))
        with self._children_lock:
            for child in self._children.values():   # unkillable (D state): never leave a descriptor behind
                with contextlib.suppress(OSError):
                    os.close(child.fd)
            self._children.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._shared is not None:
            self._shared.close()

    def _terminate_children(self) -> None:
        with self._children_lock:
            pids = list(self._children)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop(self, timeout: float = 2.0) -> None:
        if self._started and not self._stopping.is_set():
            # At once, as the other servers' handlers see their stop flag at once: the children
            # start closing while the control port and the acceptor wind down.
            self._terminate_children()
        super().stop(timeout)
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def emit(self, event: str, **fields: Any) -> None:
        if self._pipe is not None:   # in a child: the parent prints (or keeps) the events
            self._tell({"op": "emit", "e": {"event": event, "impl": self.impl, "t": round(time.time(), 6),
                                            "pid": os.getpid(), **fields}})
        else:
            super().emit(event, **fields)

    # -- a child ---------------------------------------------------------------------------------

    def _tell(self, message: dict[str, Any]) -> None:
        """Send one report up the pipe; a parent that is gone (killed) is no reason to stop serving."""
        if self._pipe is None:
            return
        view = memoryview((json.dumps(message, separators=(",", ":"), default=str) + "\n").encode())
        with contextlib.suppress(OSError):
            while view:
                view = view[os.write(self._pipe, view):]

    def _become_child(self, sock: socket.socket, pipe: int) -> None:
        # The classic bug of a forking server is every child inheriting the listening socket:
        # while any child lives the port stays bound and listening, so a restarted server cannot
        # bind it, connections keep arriving in a queue nobody accepts from once the parent is
        # gone, and every child could accept() clients it was never meant to serve. A child
        # serves exactly one connection: it closes its copy of the listener first.
        assert self._listener is not None
        self._listener.close()
        # And every other descriptor it inherited (the control port's listener and connections,
        # the other children's pipes, the watcher's wake-up pipe): a child holding a control
        # connection open would keep that client from ever seeing it close.
        keep = {0, 1, 2, sock.fileno(), pipe}
        if isinstance(self.log, SharedDeliveryLog) and self.log.fd is not None:
            keep.add(self.log.fd)
        with contextlib.suppress(OSError):
            for name in os.listdir("/proc/self/fd"):
                if name.isdigit() and int(name) not in keep:
                    with contextlib.suppress(OSError):
                        os.close(int(name))
        # Its name in /proc (the command line stays the parent's): how the server-agent tells a child,
        # even an orphan whose listener died, from a listener.
        with contextlib.suppress(OSError):
            with open("/proc/self/comm", "w") as comm:
                comm.write(CHILD_COMM)
        # The parent's objects are shared copy-on-write; a full collection would touch them all.
        gc.freeze()
        self._pipe = pipe
        self._child_stopping = False
        self._children = {}
        self.stats_ = _ChildStats(self._tell)
        self.rejections = _ChildRejections(self._tell)
        if isinstance(self.log, SharedDeliveryLog):
            self.log.after_fork_in_child()
            self.log.before_read = None
            self.log.on_refused = lambda digest: self._tell({"op": "refused", "d": digest})

        def stopping(_signum: int, _frame: object) -> None:
            self._child_stopping = True

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)

    def _child_main(self, sock: socket.socket, conn_id: int, peer: str, pipe: int) -> int:
        self._become_child(sock, pipe)
        assert self.log is not None and self._shared is not None
        core = ServerConnection(conn_id, self.log, self._shared.read, max_payload=self.max_payload,
                                emit=self.emit, peer=peer)
        self._serve_blocking(sock, core, peer, stopping=lambda: self._child_stopping, pause=time.sleep)
        return 0


__all__ = ["ForkingServer", "SharedBehaviour"]
