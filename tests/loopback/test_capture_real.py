"""lab.evidence on real tcpdump captures of real loopback exchanges (127.0.0.1 only).

tcpdump is required, not optional: these tests prove the summary matches what
the kernel really puts on the wire, and a missing tcpdump fails them with the
install command.

The capture command is the agents' one: ``tcpdump -U -i lo -w FILE -Z root``.
Stopping it the moment the exchange ends loses packets: on SIGINT tcpdump
leaves what is still in its ring buffer unwritten (tried: often none of the 8
packets of a short exchange reached the file). ``--immediate-mode`` is no cure
on lo: with the default snap length its ring has a handful of slots and a
burst overflows it ("packets dropped by kernel"). So each capture also watches
a marker port: after the exchange we knock once on the marker (a refused
connect) and wait until the knock is in the file. Packets reach the file in
order, so everything before the knock is there too; then SIGINT, and the
summary is used only if tcpdump reports 0 packets dropped.
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

from lab.evidence import CaptureError, CaptureSummary, ConnectionSummary, read_capture, summarize, tcpdump_stats

from tests.support.peers import HOST, LINGER_RST, unused_port

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
        argv = [tcpdump, "-U", "-n", "-i", "lo", "-w", str(self.path), "-Z", "root",
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
        """The summary, once tcpdump has stopped and said it dropped nothing (else the facts are partial)."""
        stats = tcpdump_stats(self.stderr.decode(errors="replace"))
        assert stats.dropped == 0, f"tcpdump dropped packets; the capture is incomplete: {self.stderr!r}"
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


def test_keepalive_probes_are_answered_by_the_idle_peers_kernel(tmp_path: Path) -> None:
    # The server application never reads or writes: only its kernel can answer.
    with listener() as lst:
        port = lst.getsockname()[1]
        with capturing(port, tmp_path) as dump:
            with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as client:
                server, _ = lst.accept()
                with server:
                    client.sendall(b"k" * 10)
                    assert recv_exactly(server, 10) == b"k" * 10
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    # Probes near +1 s and +2 s; stop halfway to the third so none is in flight.
                    time.sleep(2.5)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    conn = conversation(dump.summary(), port)
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert c2s.keepalive_probes >= 2
    assert c2s.keepalive_answered == c2s.keepalive_probes
    assert c2s.retransmissions == 0 and c2s.payload_bytes == 10
    assert s2c.duplicate_acks == 0 and s2c.keepalive_probes == 0
    assert len(conn.events("keepalive answered", "s2c")) == c2s.keepalive_probes
    assert conn.outcome == "reset by client"     # the linger-0 close ends it without TIME_WAIT


def test_a_peer_that_stops_reading_advertises_a_zero_window_and_gets_window_probes(tmp_path: Path) -> None:
    # Small buffers both ends keep the burst to some tens of kB: megabytes over
    # loopback overflow tcpdump's ring and the capture would be incomplete.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lst:
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited: a small window fills fast
        lst.bind((HOST, 0))
        lst.listen(1)
        lst.settimeout(IO_TIMEOUT)
        port = lst.getsockname()[1]
        with capturing(port, tmp_path) as dump:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
                client.settimeout(IO_TIMEOUT)
                client.connect((HOST, port))
                server, _ = lst.accept()
                with server:
                    server.settimeout(IO_TIMEOUT)
                    sent = fill_until_blocked(client)
                    time.sleep(1.0)         # Linux probes the closed window about 0.2 s and 0.6 s later
                    assert recv_exactly(server, sent) == b"z" * sent
                    client.shutdown(socket.SHUT_WR)
                    assert server.recv(1) == b""
    conn = conversation(dump.summary(), port)
    c2s, s2c = conn.client_to_server, conn.server_to_client
    assert s2c.zero_windows >= 1
    assert c2s.window_probes >= 1 and c2s.keepalive_probes == 0
    assert c2s.payload_bytes == sent and c2s.retransmissions == 0
    assert [e.what for e in conn.timeline if e.direction == "s2c" and "window" in e.what][:2] == \
        ["zero-window", "window-open"]
    assert conn.outcome == "closed"


def fill_until_blocked(sock: socket.socket, limit: int = 64 << 20) -> int:
    """Send until the kernel refuses more (the peer's window and our buffer are full); bounded by ``limit``."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < limit:
            sent += sock.send(b"z" * min(65536, limit - sent))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(IO_TIMEOUT)
    assert sent < limit, "the peer's window never closed"
    return sent
