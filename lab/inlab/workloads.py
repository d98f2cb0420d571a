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
from collections.abc import Callable, Sequence
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


def stream(*, count: int, size: int, fault_at: int, fallbacks: Sequence[tuple[str, int]] = ()) -> Worker:
    """``count`` numbered messages, the fault just before message ``fault_at``.

    robust streams them through a :class:`~lab.sockets.reliable.ReliableSender` (a session,
    resending what was not acknowledged, reconnecting, to ``fallbacks`` in turn when given);
    every other implementation makes one round trip per message on one connection. robust's
    measurements keep each connection's local port (``local_ports``, in order: the proofs find
    its connections by them), where each went (``hosts``), its ``events``, ``reconnects`` and
    ``resent``; ``ctx.facts["robust_session"]`` is its session, as the server's record names it.
    """

    def reliable(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        from lab.sockets.reliable import ReliableSender

        m = outcome.measurements
        events, ports, hosts = m.setdefault("events", []), m.setdefault("local_ports", []), m.setdefault("hosts", [])

        def on_event(name: str, facts: dict[str, Any]) -> None:
            plain = {k: v for k, v in facts.items() if isinstance(v, (int, float, str))}
            if name == "acked":   # robust's traffic in the timeline too (renderings fold the long runs)
                what = "echo intact" if facts.get("via") == "echo" else "delivered (server's HELLO says so)"
                ctx.mark("client[robust]", what, seq=facts["seq"])
            elif name in ("connected", "reconnecting", "resent"):
                if name == "connected":
                    hosts.append(f"{facts['host']}:{facts['port']}")
                events.append({"event": name, **plain})
                ctx.mark("client[robust]", name, **plain)

        with ReliableSender(subject.host, subject.port, ctx.config, on_event=on_event,
                            connect=port_recording_connect(ports), fallbacks=fallbacks) as sender:
            ctx.facts["robust_session"] = sender.session_id.hex()
            for seq in range(1, count + 1):
                if seq == fault_at:
                    ctx.ready()
                sender.send(body(seq, size))
            sender.flush()
            outcome.exchanges_ok = sender.acked
            m.update(reconnects=sender.reconnects, resent=sender.resent)

    def one_at_a_time(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        subject.connect()
        for seq in range(1, count + 1):
            if seq == fault_at:
                ctx.ready()
            ctx.exchange(subject, outcome, body(seq, size))

    def worker(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        (reliable if subject.impl == "robust" else one_at_a_time)(ctx, subject, outcome)

    return worker


def check_delivered_once(ctx: ScenarioContext, stats: dict[str, Any], *, count: int, size: int, where: str) -> None:
    """robust's checks on the stream :func:`stream` sent, from the server's record ``stats``: its
    session holds each of the ``count`` messages once (count and last sequence number), and the
    record's checksum is that of exactly those bodies (``where`` names who kept the record)."""
    from lab.server.log import body_checksum

    session = stats.get("sessions", {}).get(ctx.facts.get("robust_session"), {})
    expected = body_checksum([body(seq, size) for seq in range(1, count + 1)])
    ctx.check("robust", f"{where} delivered each of the {count} messages exactly once",
              session.get("count") == count and session.get("last_seq") == count,
              f"{where}: count {session.get('count')}, last seq {session.get('last_seq')}")
    ctx.check("robust", f"the checksum {where} kept equals the checksum of what was sent",
              session.get("checksum") == expected, f"{session.get('checksum')} vs {expected}")


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
