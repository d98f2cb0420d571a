"""The workers scenarios share: what each implementation does before and after the fault.

A worker is ``worker(ctx, subject, outcome)`` (see :mod:`lab.inlab.runner`). The
usual story is "a healthy conversation, then the fault, then one more try",
which :func:`converse` builds for any number of exchanges and message size::

    ctx.side_by_side(converse(before=2, after=1), fault=lambda: ctx.apply("freeze"))

Bodies are made from the sequence number so that a reply can be checked byte
for byte and a truncated or shifted one is recognised as corrupt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lab.inlab.context import ScenarioContext, Worker
from lab.inlab.scenario import Outcome
from lab.inlab.subjects import Subject


def body(seq: int, size: int) -> bytes:
    """A recognisable body: its own number, then a repeating pattern, ``size`` bytes long."""
    head = f"msg {seq:06d} ".encode()
    pattern = bytes(range(32, 127))
    return (head + pattern * (size // len(pattern) + 1))[:size]


def converse(*, before: int = 2, after: int = 1, size: int = 100, pause_after_fault: float = 0.0,
             measure: bool = False) -> Worker:
    """Connect, ``before`` intact round trips, wait for the fault, then ``after`` more."""

    def worker(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        actor = f"client[{subject.impl}]"
        subject.connect()
        ctx.mark(actor, "connected", to=f"{subject.host}:{subject.port}")
        rtts = outcome.measurements.setdefault("rtt_s", []) if measure else None
        for i in range(before + after):
            if i == before:
                ctx.ready()
                if pause_after_fault:
                    time.sleep(pause_after_fault)
                ctx.mark(actor, "sending after the fault")
            started = time.monotonic()
            ctx.exchange(subject, outcome, body(i + 1, size))
            if rtts is not None:
                rtts.append(round(time.monotonic() - started, 4))
        if after == 0:
            ctx.ready()

    return worker


def connect_then_exchange(*, size: int = 100) -> Worker:
    """For faults in place before anyone connects: connect, then one round trip."""

    def worker(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        actor = f"client[{subject.impl}]"
        ctx.mark(actor, "connecting", to=f"{subject.host}:{subject.port}")
        subject.connect()
        ctx.mark(actor, "connected")
        ctx.exchange(subject, outcome, body(1, size))

    return worker


def port_recording_connect(ports: list[int]) -> Callable[[str, int, Any], Any]:
    """A ``connect`` for :class:`~lab.sockets.reliable.ReliableSender` that notes each new
    connection's local port in ``ports``, in order: the sender makes its own connections (one
    more at each reconnect), and their ports are how the proofs find them in the captures."""
    from lab.sockets.robust import RobustConnection

    def connect(host: str, port: int, config: Any) -> Any:
        conn = RobustConnection.connect(host, port, config)
        ports.append(conn.socket.getsockname()[1])
        return conn

    return connect
