"""lab.capture on real tcpdump captures of real loopback exchanges (127.0.0.1 only).

tcpdump is required, not optional: these tests prove the summary matches what
the kernel really puts on the wire, and a missing tcpdump fails them with the
install command.

Stopping tcpdump the moment the exchange ends loses packets: on SIGINT it
leaves whatever is still in its ring buffer unread (tried: often 0 of 8
packets made it to the file). So each capture also watches a marker port, and
after the exchange we knock once on the marker (a refused connect) and wait
until that knock is in the file. Packets reach the file in order, so
everything before the knock is there too; then SIGINT.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.capture import CaptureError, CaptureSummary, ConnectionSummary, read_capture, summarize

from ._peers import HOST, LINGER_RST, unused_port

TCPDUMP_MISSING = ("tcpdump is required for the packet-evidence tests and is not installed: "
                   "run `apt-get install tcpdump` (the project's bootstrap installs it)")
START_TIMEOUT = 10.0
FLUSH_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0


class Tcpdump:
    """A running ``tcpdump -U -i lo -w FILE -Z root 'tcp port N or tcp port MARKER'``."""

    def __init__(self, port: int, path: Path) -> None:
        self.port, self.path = port, path
        self.marker = unused_port()
        self.stderr = b""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            pytest.fail(TCPDUMP_MISSING, pytrace=False)
        argv = [tcpdump, "-U", "--immediate-mode", "-n", "-i", "lo", "-w", str(self.path), "-Z", "root",
                f"tcp port {self.port} or tcp port {self.marker}"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._wait_for_stderr(b"listening on", START_TIMEOUT)

    def _wait_for_stderr(self, needle: bytes, timeout: float) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while needle not in self.stderr:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"tcpdump did not say {needle!r} within {timeout} s; stderr: {self.stderr!r}")
            ready, _, _ = select.select([self.proc.stderr], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:   # EOF: tcpdump exited (no permission, bad interface, ...)
                    pytest.fail(f"tcpdump exited before capturing: {self.stderr.decode(errors='replace')}")
                self.stderr += chunk

    def flush(self) -> None:
        """Knock on the marker port and wait until the knock is in the file (see the module docstring)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as knock:
            knock.settimeout(IO_TIMEOUT)
            with pytest.raises(ConnectionRefusedError):
                knock.connect((HOST, self.marker))
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while not self._file_has_marker():
            if time.monotonic() > deadline:
                pytest.fail(f"the marker knock did not reach {self.path} within {FLUSH_TIMEOUT} s")
            time.sleep(0.02)

    def _file_has_marker(self) -> bool:
        try:
            capture = read_capture(self.path.read_bytes())
        except (FileNotFoundError, CaptureError):   # not created yet, or a record half written
            return False
        return any(self.marker in (s.src.port, s.dst.port) for s in capture.segments)

    def stop(self) -> None:
        """SIGINT, then wait; kill if it will not go. Safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
            self.stderr += err
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=STOP_TIMEOUT)
            pytest.fail(f"tcpdump ignored SIGINT for {STOP_TIMEOUT} s and was killed")

    def summary(self) -> CaptureSummary:
        return summarize(self.path.read_bytes(), server_port=self.port)


@contextlib.contextmanager
def capturing(port: int, tmp_path: Path) -> Iterator[Tcpdump]:
    dump = Tcpdump(port, tmp_path / f"lo-{port}.pcap")
    try:
        dump.start()
        yield dump
        dump.flush()
    finally:
        dump.stop()


def conversation(summary: CaptureSummary, port: int) -> ConnectionSummary:
    """The one connection to ``port``; only the marker knock may be beside it."""
    ours = summary.connections_to(port)
    others = [c for c in summary.connections if c not in ours]
    assert len(ours) == 1, summary.as_dict()
    assert [c.outcome for c in others] == ["refused"], summary.as_dict()   # the marker knock
    return ours[0]


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lst:
        lst.bind((HOST, 0))
        lst.listen(1)
        lst.settimeout(IO_TIMEOUT)
        yield lst


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk, f"EOF after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


def test_tcpdump_is_installed() -> None:
    assert shutil.which("tcpdump") is not None, TCPDUMP_MISSING


def test_clean_close_shows_a_fin_each_way_and_exactly_3000_bytes(tmp_path: Path) -> None:
    with listener() as lst:
        port = lst.getsockname()[1]
        with capturing(port, tmp_path) as dump:
            with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as client:
                server, _ = lst.accept()
                with server:
                    server.settimeout(IO_TIMEOUT)
                    client.sendall(b"\xab" * 3000)
                    assert recv_exactly(server, 3000) == b"\xab" * 3000
                # The server has read everything and closed: FIN, not RST.
                assert client.recv(1) == b""
    conn = conversation(dump.summary(), port)
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert conn.roles_from == "syn" and conn.outcome == "closed"
    assert (c2s.syn.count, s2c.syn_ack.count) == (1, 1)
    assert (c2s.fin.count, s2c.fin.count) == (1, 1)
    assert (c2s.rst.count, s2c.rst.count) == (0, 0)
    assert (c2s.payload_bytes, s2c.payload_bytes) == (3000, 0)
    assert c2s.acked_bytes == 3000
    assert c2s.retransmissions == s2c.retransmissions == 0
    assert s2c.fin.first is not None and c2s.fin.first is not None and s2c.fin.first <= c2s.fin.first
    assert [e.what for e in conn.timeline if e.what in ("SYN", "SYN-ACK", "FIN", "RST")] == \
        ["SYN", "SYN-ACK", "FIN", "FIN"]


def test_server_abort_with_linger_zero_is_one_rst_from_the_server(tmp_path: Path) -> None:
    with listener() as lst:
        port = lst.getsockname()[1]
        with capturing(port, tmp_path) as dump:
            with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as client:
                server, _ = lst.accept()
                server.settimeout(IO_TIMEOUT)
                client.sendall(b"hello")
                assert recv_exactly(server, 5) == b"hello"
                server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
                server.close()
                with pytest.raises(ConnectionResetError):
                    client.recv(1)
    conn = conversation(dump.summary(), port)
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert conn.outcome == "reset by server"
    assert (s2c.rst.count, c2s.rst.count) == (1, 0)
    assert (c2s.fin.count, s2c.fin.count) == (0, 0)
    assert c2s.payload_bytes == 5
    assert conn.events("RST")[0].direction == "s2c"


def test_connect_to_a_port_nobody_listens_on_is_a_syn_answered_by_rst(tmp_path: Path) -> None:
    port = unused_port()
    with capturing(port, tmp_path) as dump:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(IO_TIMEOUT)
            with pytest.raises(ConnectionRefusedError):
                client.connect((HOST, port))
    conn = conversation(dump.summary(), port)
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert conn.outcome == "refused" and conn.roles_from == "syn"
    assert (c2s.syn.count, s2c.syn_ack.count, s2c.rst.count, c2s.rst.count) == (1, 0, 1, 0)
    assert s2c.packets == 1 and c2s.packets == 1
    assert (c2s.payload_bytes, s2c.payload_bytes) == (0, 0)
