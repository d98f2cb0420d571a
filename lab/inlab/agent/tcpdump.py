"""Packet captures in the fault agent: the filter grammar tcpdump may see, and one running tcpdump.

:func:`parse_filter` admits a small grammar (ports, hosts, and/or/not) and
returns the tokens as separate argv entries, so nothing in a filter can become
a tcpdump option. :class:`TcpdumpCapture` is one tcpdump process writing one
pcap file: it drains tcpdump's stderr, notices "listening on", and stops
tcpdump without losing the packets it has not written yet. The agent
(:class:`lab.inlab.agent.service.Agent`) starts, limits and hands out captures.
"""

from __future__ import annotations

import re
import signal as signals
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from lab.inlab.agent.commands import Process
from lab.inlab.agent.requests import BadRequest

CAPTURE_STOP_TIMEOUT = 5.0
CAPTURE_SETTLE_LIMIT = 1.0       # capture_stop waits for the file to stop growing, but no longer than this

_PORT_RE = re.compile(r"[0-9]{1,5}")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_FILTER_WORDS = {"tcp", "icmp", "port", "host", "and", "or", "not", "src", "dst"}
FILTER_GRAMMAR = ("PRIMARY [(and|or) PRIMARY ...], where PRIMARY is [not] tcp | [not] icmp "
                  "| [not] [src|dst] port N (1-65535) "
                  "| [not] [src|dst] host NAME-or-IPv4 (NAME: lowercase letters, digits, '-', '.')")
MAX_FILTER = 256


def parse_filter(text: str) -> list[str]:
    """Check a capture filter against the small grammar tcpdump is allowed to see; returns its tokens.

    The tokens go to tcpdump as separate argv entries (never through a
    shell), and the grammar admits no token starting with '-', so nothing in
    a filter can become a tcpdump option such as ``-w /etc/x`` or ``-z``.
    """
    if not isinstance(text, str) or len(text) > MAX_FILTER:
        raise BadRequest(f'capture_start: field "filter" must be a string of at most {MAX_FILTER} characters')
    tokens = text.split()
    if not tokens:
        raise BadRequest(f'capture_start: field "filter" is empty; accepted grammar: {FILTER_GRAMMAR}')
    i = 0

    def fail(why: str) -> BadRequest:
        return BadRequest(f'capture_start: field "filter": {why} in {text!r}; accepted grammar: {FILTER_GRAMMAR}')

    def take(position: int) -> str:
        if position >= len(tokens):
            raise fail("the filter ends early")
        return tokens[position]

    while True:
        if take(i) == "not":
            i += 1
        tok = take(i)
        if tok in ("tcp", "icmp"):
            i += 1
        else:
            if tok in ("src", "dst"):
                i += 1
                tok = take(i)
            if tok == "port":
                value = take(i + 1)
                if not _PORT_RE.fullmatch(value) or not 1 <= int(value) <= 65535:
                    raise fail(f"port must be a number from 1 to 65535, not {value!r}")
            elif tok == "host":
                value = take(i + 1)
                # Digits and dots only is an address attempt: it must be a valid IPv4, not a "host name".
                looks_numeric = re.fullmatch(r"[0-9.]+", value) is not None
                valid = _IPV4_RE.fullmatch(value) if looks_numeric else _HOSTNAME_RE.fullmatch(value)
                if value in _FILTER_WORDS or not valid:
                    raise fail(f"host must be an IPv4 address or a lowercase host name, not {value!r}")
            else:
                raise fail(f"unexpected {tok!r} at token {i + 1}")
            i += 2
        if i == len(tokens):
            return tokens
        if tokens[i] not in ("and", "or"):
            raise fail(f"expected 'and' or 'or' at token {i + 1}, got {tokens[i]!r}")
        i += 1


@dataclass
class TcpdumpCapture:
    """One running tcpdump writing ``path`` (``proc`` is None until it starts), and what it said."""

    name: str
    path: Path
    tokens: list[str]
    proc: Process | None = None
    interface: str | None = None    # None: the agent's (eth0); a router picks one of its two links
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))  # tcpdump says little; bound it anyway
    ready: threading.Event = field(default_factory=threading.Event)
    auto_stopped: bool = False
    timer: threading.Timer | None = None
    reader: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read_stderr(self) -> None:
        """Drain tcpdump's stderr (so it never blocks on a full pipe) and notice 'listening on'."""
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if "listening on" in line:
                self.ready.set()

    def settle(self, quiet: float, limit: float = CAPTURE_SETTLE_LIMIT) -> None:
        """Wait until the pcap file has not grown for ``quiet`` seconds (at most ``limit``).

        tcpdump exits on SIGINT without writing packets it has received but not yet
        handled; a capture stopped right after its connection lost everything after
        the SYN (measured). With -U each handled packet is written at once, so a file
        that stopped growing means tcpdump has caught up.
        """
        deadline = time.monotonic() + limit
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != last:
                last, still_since = size, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
            time.sleep(min(quiet / 2, 0.05))

    def stop(self, grace: float = CAPTURE_STOP_TIMEOUT, quiet: float = 0.0) -> None:
        """Settle (see :meth:`settle`), SIGINT (tcpdump exits), SIGKILL after ``grace``; idempotent."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                if quiet > 0:
                    self.settle(quiet)
                proc.send_signal(signals.SIGINT)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=grace)
            if self.reader is not None:
                self.reader.join(timeout=1.0)  # picks up tcpdump's "N packets captured" lines

    def summary(self) -> list[str]:
        return [line for line in self.lines if "packets" in line]
