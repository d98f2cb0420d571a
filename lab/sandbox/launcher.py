"""The sandbox's PID 1: one fresh submission process per driver connection, and nothing left behind.

Runs inside the sandbox container (standard library only)::

    python3 -m lab.sandbox.launcher --listen 127.0.0.1:7900 -- python3 -m lab.sandbox.adapter /submission/x.py

It listens on the driver port; the judge (the in-lab runner, another user in the same network
namespace) dials it once per subject. For each accepted connection it starts CMD afresh with
stdin *and* stdout being that connection, in a session of its own, and keeps no copy of the
connection: when the judge closes its end the child reads EOF, and when the child exits the
judge reads EOF. Each child's stderr is forwarded to the launcher's stderr, cut after
``--stderr-limit`` bytes so one child cannot flood the logs.

What it guarantees, and why:

- at most ``--max-children`` children at once; a connection beyond that is closed at once
  (the judge reads EOF) and logged, so a submission cannot exhaust the container through it;
- when a child exits, whatever it left in its session (its process group, and any process that
  moved to another group of the same session) is killed: one subject's leftovers never meet
  the next subject;
- it reaps every zombie, its own children and orphans alike, because it is the container's
  PID 1 (``docker compose run`` without an init);
- SIGTERM or SIGINT: every child's session is killed, then it exits 0. A daemon that left its
  session with setsid() escapes that, but not the end of the container: the host removes the
  container after each scenario (lab/host/sandbox.py), and PID 1 exiting ends its pid namespace.

Events go to stderr as ``launcher: ...`` lines; the first, once the socket listens, is
``launcher: listening on HOST:PORT`` (the host waits for it).
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.addresses import DRIVER_HOST, DRIVER_PORT

MAX_CHILDREN = 16
STDERR_LIMIT = 64 * 1024         # bytes of one child's stderr that reach the logs
BACKLOG = 16
POLL = 1.0                       # the loop also reaps on this tick, in case a SIGCHLD was coalesced
STOP_WAIT = 2.0                  # after SIGKILL, how long shutdown waits to reap the children
READ_CHUNK = 65536
LISTENING = "launcher: listening on"


def log(message: str) -> None:
    _write_all(2, f"launcher: {message}\n".encode(errors="replace"))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:
            return  # our stderr is gone: nothing left to tell


@dataclass
class Child:
    """One running CMD, its stderr pipe, and how much of that already went to the logs."""

    proc: subprocess.Popen[bytes]
    peer: str
    stderr_fd: int | None
    forwarded: int = 0
    cut: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid


def session_members(sid: int, proc_root: Path = Path("/proc")) -> list[int]:
    """Pids of every process in session ``sid`` (fields 5 and 6 of /proc/PID/stat are pgrp and session)."""
    found = []
    try:
        entries = list(proc_root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and fields[3] == str(sid):
            found.append(int(entry.name))
    return found


def kill_session(leader: int) -> None:
    """SIGKILL the process group and the whole session that ``leader`` started (start_new_session)."""
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    # setpgid() can move a process to another group of the same session, out of killpg's reach;
    # only setsid() leaves the session, and the container's removal takes care of those.
    for pid in session_members(leader):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Launcher:
    def __init__(self, host: str, port: int, command: Sequence[str], *, max_children: int = MAX_CHILDREN,
                 stderr_limit: int = STDERR_LIMIT) -> None:
        self.command = list(command)
        self.max_children = max_children
        self.stderr_limit = stderr_limit
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.listener = socket.create_server((host, port), backlog=BACKLOG, reuse_port=False)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    # Signals -------------------------------------------------------------------
    def install_signals(self) -> None:
        # The handlers do nothing: set_wakeup_fd writes each signal's number into the pipe, and the
        # loop acts on it, outside any handler. PID 1 gets no default action, so each one is needed.
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed stderr reader must not kill PID 1

    def _on_wakeup(self) -> None:
        try:
            data = os.read(self.wake_r, 4096)
        except BlockingIOError:
            return
        if signal.SIGTERM in data or signal.SIGINT in data:
            self.stopping = True
        self.reap()

    # Main loop -----------------------------------------------------------------
    def serve(self) -> int:
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        host, port = self.address
        log(f"listening on {host}:{port}")
        while not self.stopping:
            for key, _ in self.selector.select(POLL):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._on_wakeup()
                else:
                    self._forward(key.data)
                if self.stopping:
                    break
            self.reap()
        self.shutdown()
        return 0

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: say so and keep serving the ones we have
                log(f"accept failed: {exc}")
                time.sleep(0.05)
                return
            where = f"{peer[0]}:{peer[1]}"
            with conn:
                if len(self.children) >= self.max_children:
                    log(f"refused a connection from {where}: {self.max_children} children running")
                    continue
                self._start(conn, where)

    def _start(self, conn: socket.socket, peer: str) -> None:
        # The child's stdin and stdout share this fd's file status flags: it must block.
        conn.setblocking(True)
        fd = conn.fileno()
        try:
            proc = subprocess.Popen(self.command, stdin=fd, stdout=fd, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            log(f"cannot start {self.command[0]} for {peer}: {exc}")
            return
        # The connection is closed when this returns (the caller's `with`): the child holds the only copy.
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        child = Child(proc, peer, proc.stderr.fileno())
        self.children[proc.pid] = child
        self.selector.register(child.stderr_fd, selectors.EVENT_READ, child)
        log(f"child {proc.pid} started for a connection from {peer}")

    def _forward(self, child: Child, final: bool = False) -> None:
        """Copy what the child wrote to stderr (up to the limit) into ours; close the pipe at EOF."""
        fd = child.stderr_fd
        if fd is None:
            return
        for _ in range(16 if final else 1):  # bounded: a child writing fast cannot pin the loop
            try:
                data = os.read(fd, READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._close_stderr(child)
                return
            room = self.stderr_limit - child.forwarded
            if room > 0:
                _write_all(2, data[:room])
            child.forwarded += len(data)
            if child.forwarded > self.stderr_limit and not child.cut:
                child.cut = True
                _write_all(2, b"\n")  # the note starts a line of its own, whatever the child wrote last
                log(f"child {child.pid}: stderr cut after {self.stderr_limit} bytes")

    def _close_stderr(self, child: Child) -> None:
        fd = child.stderr_fd
        if fd is None:
            return
        child.stderr_fd = None
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        if child.proc.stderr is not None:
            child.proc.stderr.close()

    def reap(self) -> None:
        """Reap every exited child, ours and adopted orphans; kill what an exited child left behind."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue  # an orphan this PID 1 adopted
            code = os.waitstatus_to_exitcode(status)
            child.proc.returncode = code  # so Popen never waits on a pid that may be reused
            kill_session(pid)
            self._forward(child, final=True)
            self._close_stderr(child)
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            log(f"child {pid} {how} after {time.monotonic() - child.started:.1f} s")

    def shutdown(self) -> None:
        log(f"stopping: killing {len(self.children)} children")
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        for pid in list(self.children):
            kill_session(pid)
        deadline = time.monotonic() + STOP_WAIT
        while self.children and time.monotonic() < deadline:
            self.reap()
            if self.children:
                time.sleep(0.02)
        for child in list(self.children.values()):
            self._close_stderr(child)
        log("stopped")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as {DRIVER_HOST}:{DRIVER_PORT}; got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is CMD, untouched (it may carry options of its own).
    if "--" not in argv:
        argv.append("--")
    cut = argv.index("--")
    own, command = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python3 -m lab.sandbox.launcher",
                                     usage="%(prog)s [--listen HOST:PORT] [options] -- CMD [ARGS...]",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=(DRIVER_HOST, DRIVER_PORT),
                        help=f"where the judge dials (default {DRIVER_HOST}:{DRIVER_PORT}; port 0 picks one)")
    parser.add_argument("--max-children", type=int, default=MAX_CHILDREN)
    parser.add_argument("--stderr-limit", type=int, default=STDERR_LIMIT)
    opts = parser.parse_args(own)
    if not command:
        parser.error("no CMD: give the submission's command after --")
    if shutil.which(command[0]) is None:
        parser.error(f"CMD {command[0]!r} is not an executable file or on PATH")
    if opts.max_children < 1 or opts.stderr_limit < 0:
        parser.error("--max-children must be at least 1 and --stderr-limit at least 0")
    host, port = opts.listen
    try:
        launcher = Launcher(host, port, command, max_children=opts.max_children, stderr_limit=opts.stderr_limit)
    except OSError as exc:
        log(f"cannot listen on {host}:{port}: {exc}")
        return 1
    launcher.install_signals()
    return launcher.serve()


if __name__ == "__main__":
    sys.exit(main())
