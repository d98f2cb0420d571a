"""The sandbox's launcher as a real subprocess on 127.0.0.1: one fresh child per connection, and nothing left.

Each test starts ``python -m lab.sandbox.launcher --listen 127.0.0.1:0`` (the kernel picks a
free port, which the launcher's first line reports) with a tiny Python CMD, dials it, and
looks at the processes through /proc: sessions, process groups, zombies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.sandbox.launcher import session_members

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 5.0

# Says who it is (and what its stdin and stdout are), then echoes lines until EOF.
ECHO = r'''
import json, os, socket, stat, sys
conn = socket.socket(fileno=os.dup(0))
me = {"pid": os.getpid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
      "stdin_is_socket": stat.S_ISSOCK(os.fstat(0).st_mode),
      "same_file": (os.fstat(0).st_ino, os.fstat(0).st_dev) == (os.fstat(1).st_ino, os.fstat(1).st_dev),
      "peer": list(conn.getpeername())}
sys.stdout.write(json.dumps(me) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    sys.stdout.write(line); sys.stdout.flush()
'''

# Leaves two grandchildren in its session (one moved to a group of its own), reports their pids,
# then ignores EOF and SIGTERM: only the launcher's session kill ends them.
STUBBORN = r'''
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
read, write = os.pipe()
for own_group in (False, True):
    if os.fork() == 0:
        if os.fork() == 0:            # double fork: the grandchild is orphaned, still in this session
            if own_group:
                os.setpgid(0, 0)
            os.write(write, b"%d %d\n" % (own_group, os.getpid()))  # they may report in either order
            while True:
                time.sleep(1)
        os._exit(0)
    os.wait()
os.close(write)
with os.fdopen(read) as r:
    grandchildren = [pid for _, pid in sorted(tuple(map(int, next(r).split())) for _ in range(2))]
sys.stdout.write(json.dumps({"pid": os.getpid(), "grandchildren": grandchildren}) + "\n"); sys.stdout.flush()
if sys.argv[1:] == ["exit-on-eof"]:
    sys.stdin.read()
    sys.exit(0)
while True:
    time.sleep(1)
'''


class RunningLauncher:
    """A launcher subprocess, its port, and its stderr collected by a thread."""

    def __init__(self, *command: str, options: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.sandbox.launcher", "--listen", "127.0.0.1:0",
                                      *options, "--", *command], cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.wait_for(r"launcher: listening on 127\.0\.0\.1:(\d+)")
        self.port = int(first.group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s: {self.lines}")
                self._changed.wait(left)

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def dial(self) -> tuple[socket.socket, dict[str, object]]:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        with conn.makefile("rb") as stream:
            return conn, json.loads(stream.readline())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)
            raise
        finally:
            self._reader.join(timeout=DEADLINE)
            assert self.proc.stderr is not None
            self.proc.stderr.close()


@pytest.fixture
def launch() -> Iterator:  # type: ignore[type-arg]
    started: list[RunningLauncher] = []

    def start(*command: str, options: tuple[str, ...] = ()) -> RunningLauncher:
        launcher = RunningLauncher(*command, options=options)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        launcher.stop()


def state(pid: int) -> str | None:
    """The process's state letter, or None once it is gone ("Z" is a zombie: dead, not reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def wait_until(predicate, timeout: float = DEADLINE) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def dead(pid: int) -> bool:
    # A killed grandchild is reaped by whoever adopted it (not the launcher here): a zombie is dead.
    return state(pid) in (None, "Z")


# ------------------------------------------------------------------------------------------------

def test_each_connection_gets_a_fresh_child_whose_stdin_and_stdout_are_the_connection(launch) -> None:  # type: ignore[no-untyped-def]
    launcher = launch(sys.executable, "-c", ECHO)
    first, me1 = launcher.dial()
    second, me2 = launcher.dial()
    with first, second:
        assert me1["pid"] != me2["pid"]
        for conn, me in ((first, me1), (second, me2)):
            # Its own session and group, led by itself; fd 0 and fd 1 are the one accepted socket.
            assert (me["sid"], me["pgid"]) == (me["pid"], me["pid"])
            assert (me["stdin_is_socket"], me["same_file"]) == (True, True)
            assert me["peer"] == list(conn.getsockname())
        first.sendall(b"one\n")
        second.sendall(b"two\n")
        assert (first.recv(100), second.recv(100)) == (b"one\n", b"two\n")
    launcher.wait_for(rf"child {me1['pid']} exited with 0")
    launcher.wait_for(rf"child {me2['pid']} exited with 0")
    assert launcher.text().count("started for a connection from 127.0.0.1:") == 2


def test_the_launcher_keeps_no_copy_of_a_connection(launch) -> None:  # type: ignore[no-untyped-def]
    # When the child exits the judge reads EOF at once: nobody else holds the socket open.
    launcher = launch(sys.executable, "-c", "print('bye', flush=True)")
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=DEADLINE) as conn:
        with conn.makefile("rb") as stream:
            assert stream.read() == b"bye\n"


def test_children_are_reaped(launch) -> None:  # type: ignore[no-untyped-def]
    launcher = launch(sys.executable, "-c", ECHO)
    pids = []
    for _ in range(3):
        conn, me = launcher.dial()
        conn.close()
        pids.append(me["pid"])
    for pid in pids:
        launcher.wait_for(rf"child {pid} exited with 0")
        assert wait_until(lambda: state(pid) is None), f"child {pid} is {state(pid)}"


def test_leftovers_in_an_exited_childs_session_are_killed(launch) -> None:  # type: ignore[no-untyped-def]
    launcher = launch(sys.executable, "-c", STUBBORN, "exit-on-eof")
    conn, me = launcher.dial()
    grandchildren = me["grandchildren"]
    assert all(session_members(me["pid"]).count(g) == 1 for g in grandchildren)
    conn.close()
    launcher.wait_for(rf"child {me['pid']} exited with 0")
    for pid in grandchildren:
        assert wait_until(lambda: dead(pid)), f"grandchild {pid} is {state(pid)}"


def test_sigterm_kills_a_child_that_ignores_eof_and_its_grandchildren(launch) -> None:  # type: ignore[no-untyped-def]
    launcher = launch(sys.executable, "-c", STUBBORN)
    conn, me = launcher.dial()
    child, grandchildren = me["pid"], me["grandchildren"]
    # Both grandchildren are in the child's session; one has left its process group.
    assert sorted(session_members(child)) == sorted([child, *grandchildren])
    assert [os.getpgid(g) for g in grandchildren] == [child, grandchildren[1]]
    conn.close()  # EOF: the child does not care
    time.sleep(0.3)
    assert state(child) not in (None, "Z")
    assert launcher.stop() == 0
    assert launcher.wait_for(r"launcher: stopped")
    for pid in (child, *grandchildren):
        assert wait_until(lambda: dead(pid)), f"{pid} is {state(pid)}"
    assert f"child {child} killed by SIGKILL" in launcher.text()


def test_connections_beyond_the_bound_are_refused(launch) -> None:  # type: ignore[no-untyped-def]
    launcher = launch(sys.executable, "-c", ECHO, options=("--max-children", "2"))
    first, me1 = launcher.dial()
    second, _ = launcher.dial()
    with second, socket.create_connection(("127.0.0.1", launcher.port), timeout=DEADLINE) as third:
        assert third.recv(100) == b""  # closed at once: no child for it
        port = third.getsockname()[1]
        launcher.wait_for(rf"refused a connection from 127\.0\.0\.1:{port}: 2 children running")
        first.close()
        launcher.wait_for(rf"child {me1['pid']} exited with 0")
        fourth, me4 = launcher.dial()  # a slot is free again
        with fourth:
            assert (me4["sid"], me4["stdin_is_socket"]) == (me4["pid"], True)
    assert launcher.text().count("refused a connection") == 1


def test_a_childs_stderr_reaches_the_log_cut_at_the_limit(launch) -> None:  # type: ignore[no-untyped-def]
    code = "import sys; sys.stderr.write('x' * 100000); sys.stderr.flush(); print('done', flush=True)"
    launcher = launch(sys.executable, "-c", code, options=("--stderr-limit", "1000"))
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=DEADLINE) as conn:
        with conn.makefile("rb") as stream:
            assert stream.read() == b"done\n"
    match = launcher.wait_for(r"child (\d+) exited with 0")
    text = launcher.text()
    assert "x" * 1000 + f"\nlauncher: child {match.group(1)}: stderr cut after 1000 bytes\n" in text
    assert "x" * 1001 not in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--listen", "127.0.0.1:0"], "no CMD: give the submission's command after --"),
    (["--listen", "127.0.0.1:0", "--", "/no/such/program"], "CMD '/no/such/program' is not an executable file"),
    (["--listen", "nowhere", "--", "true"], "expected HOST:PORT such as 127.0.0.1:7900; got 'nowhere'"),
])
def test_bad_arguments_are_refused_before_listening(argv: list[str], message: str) -> None:
    res = subprocess.run([sys.executable, "-m", "lab.sandbox.launcher", *argv], cwd=ROOT, capture_output=True,
                         text=True, timeout=DEADLINE)
    assert res.returncode == 2
    assert message in res.stderr
    assert "listening" not in res.stderr
