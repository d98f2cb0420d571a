"""The workload driver: send N messages of S bytes with one socket implementation and narrate it as JSON lines.

The lab's scenarios run this inside a container (or a test calls :func:`main`)
and judge the implementation by what it prints, one JSON object per line::

    python -m lab.inlab.driver --host 127.0.0.1 --port 7000 --impl robust --count 100 --size 1024
    python -m lab.inlab.driver --port 7000 --impl robust --reliable --count 1000 --size 64
    python -m lab.inlab.driver --port 7000 --impl naive-single-recv --count 10 --size 100000

Every line has ``event`` and ``t`` (seconds since start, monotonic) plus facts:

    connected     host, port, impl (and attempt, last_delivered with --reliable)
    sent          seq, bytes
    received      seq, bytes                     (the matching ECHO came back, checked)
    reconnecting  attempt, delay, error...       (--reliable only)
    resent        count, first, last             (--reliable only)
    error         error (class name), message, errno, errno_name, and for lab errors
                  detected_by / received / expected / sent / total (LabError.as_dict())
    done          sent, received, elapsed

Exit status: 0 every message done, 1 an error was reported, 2 bad arguments.
The naive implementations (``lab.sockets.naive``) have no deadlines by design: against
a silent peer they block forever, which is the behaviour under study.
"""

from __future__ import annotations

import argparse
import errno as errno_module
import json
import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from lab.sockets.backoff import Backoff
from lab.sockets.errors import LabError, ProtocolError
from lab.sockets.framing import Decoder, Frame, FrameType
from lab.sockets.reliable import ReliableSender
from lab.sockets.robust import RobustConfig, RobustConnection
from lab.sockets.timeouts import Timeouts

IMPLS = ("robust", "naive", "naive-fixed", "naive-single-recv", "naive-ignore-send")
_PATTERN = bytes(range(251))  # a prime length, so shifted copies differ for every seq


class WrongReply(ProtocolError):
    """A reply came back that is not the ECHO of what was sent (truncated, glued, or foreign)."""


def body_for(seq: int, size: int) -> bytes:
    """The deterministic body of message ``seq``: a checker can recompute it."""
    start = seq % len(_PATTERN)
    repeats = (start + size) // len(_PATTERN) + 1
    return (_PATTERN * repeats)[start:start + size]


# -- arguments -------------------------------------------------------------------------------------

def _number(kind: str, *, minimum: float, allow_zero_off: bool = False, integer: bool = False
            ) -> Callable[[str], Any]:
    what = f"{'an integer' if integer else 'a number'} >= {minimum:g}" + (" (0 = off)" if allow_zero_off else "")

    def parse(text: str) -> Any:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be {what}; got {text!r}") from None
        if allow_zero_off and value == 0:
            return None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"{kind} must be {what}; got {text!r}")
        return value
    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be an integer from 1 to 65535; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.inlab.driver", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, required=True, help="server port, 1-65535")
    p.add_argument("--impl", choices=IMPLS, default="robust", help="which socket code to drive")
    p.add_argument("--count", type=_number("count", minimum=0, integer=True), default=10,
                   help="messages to send (>= 0)")
    p.add_argument("--size", type=_number("size", minimum=0, integer=True), default=64,
                   help="body bytes per message (>= 0)")
    p.add_argument("--pause", type=_number("pause", minimum=0), default=0.0,
                   help="seconds to wait between messages")
    p.add_argument("--reliable", action="store_true",
                   help="robust only: session + resend + reconnect with backoff (exactly-once)")
    p.add_argument("--half-close", action="store_true",
                   help="robust only: send everything, shutdown(SHUT_WR), then read replies until EOF")
    r = p.add_argument_group("robust knobs (seconds unless named otherwise)")
    r.add_argument("--connect-timeout", type=_number("--connect-timeout", minimum=0.001), default=Timeouts().connect)
    r.add_argument("--read-timeout", type=_number("--read-timeout", minimum=0.001), default=Timeouts().read)
    r.add_argument("--write-timeout", type=_number("--write-timeout", minimum=0.001), default=Timeouts().write)
    r.add_argument("--idle-timeout", type=_number("--idle-timeout", minimum=0.001), default=Timeouts().idle)
    r.add_argument("--heartbeat-interval", type=_number("--heartbeat-interval", minimum=0.001,
                                                        allow_zero_off=True), default=1.0)
    r.add_argument("--dead-after", type=_number("--dead-after", minimum=0.001), default=3.0)
    r.add_argument("--no-keepalive", dest="keepalive", action="store_false", help="do not arm SO_KEEPALIVE")
    r.add_argument("--keepalive-idle", type=_number("--keepalive-idle", minimum=1, integer=True), default=1)
    r.add_argument("--keepalive-interval", type=_number("--keepalive-interval", minimum=1, integer=True),
                   default=1)
    r.add_argument("--keepalive-count", type=_number("--keepalive-count", minimum=1, integer=True), default=3)
    r.add_argument("--user-timeout-ms", type=_number("--user-timeout-ms", minimum=0, integer=True), default=3000,
                   help="TCP_USER_TIMEOUT in ms (0 = kernel default)")
    r.add_argument("--max-payload", type=_number("--max-payload", minimum=8, integer=True), default=None)
    r.add_argument("--no-nodelay", dest="nodelay", action="store_false", help="leave Nagle's algorithm on")
    r.add_argument("--window", type=_number("--window", minimum=1, integer=True), default=16,
                   help="--reliable: messages in flight")
    r.add_argument("--reconnect-deadline", type=_number("--reconnect-deadline", minimum=0.001), default=30.0,
                   help="--reliable: give up after this long without a connection")
    r.add_argument("--backoff-base", type=_number("--backoff-base", minimum=0.001), default=0.05)
    r.add_argument("--backoff-cap", type=_number("--backoff-cap", minimum=0.001), default=2.0)
    return p


def config_from(args: argparse.Namespace) -> RobustConfig:
    """The RobustConfig the flags describe; ValueError (naming the setting) if they do not fit together."""
    extra: dict[str, Any] = {}
    if args.max_payload is not None:
        extra["max_payload"] = args.max_payload
    return RobustConfig(
        timeouts=Timeouts(connect=args.connect_timeout, read=args.read_timeout, write=args.write_timeout,
                          idle=args.idle_timeout),
        keepalive=args.keepalive, keepalive_idle=args.keepalive_idle,
        keepalive_interval=args.keepalive_interval, keepalive_count=args.keepalive_count,
        user_timeout_ms=args.user_timeout_ms, heartbeat_interval=args.heartbeat_interval,
        dead_after=args.dead_after, nodelay=args.nodelay, **extra)


# -- output ----------------------------------------------------------------------------------------

class Reporter:
    """Writes one JSON object per line, each stamped with seconds since start."""

    def __init__(self, out: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._start = clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def __call__(self, event: str, *, at: float | None = None, **facts: object) -> None:
        """One event line; ``at`` (seconds, from :attr:`elapsed`) when it happened earlier than now."""
        line = {"event": event, "t": round(self.elapsed if at is None else at, 6), **facts}
        self._out.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
        self._out.flush()


def error_facts(exc: BaseException) -> dict[str, object]:
    """What an error event says: LabError.as_dict(), or the class name and errno of anything else."""
    if isinstance(exc, LabError):
        return exc.as_dict()
    facts: dict[str, object] = {"error": type(exc).__name__, "message": str(exc)}
    code = getattr(exc, "errno", None)
    if code is not None:
        facts["errno"] = code
        facts["errno_name"] = errno_module.errorcode.get(code, str(code))
    return facts


# -- workloads -------------------------------------------------------------------------------------

def _pause(args: argparse.Namespace, index: int) -> None:
    if args.pause and index < args.count - 1:
        time.sleep(args.pause)


def _check_echo(frame: Frame, seq: int, body: bytes) -> None:
    if frame.type is not FrameType.ECHO or frame.seq != seq or frame.body != body:
        raise WrongReply(f"expected the ECHO of seq {seq} ({len(body)} bytes); got {frame.type.name} "
                         f"seq {frame.seq if len(frame.payload) >= 8 else '?'} with {len(frame.body)} bytes",
                         phase="read")


def run_robust(args: argparse.Namespace, config: RobustConfig, emit: Reporter) -> tuple[int, int]:
    sent = received = 0
    with RobustConnection.connect(args.host, args.port, config) as conn:
        emit("connected", host=args.host, port=args.port, impl="robust")
        if args.half_close:
            expected = []
            for i in range(args.count):
                body = body_for(i + 1, args.size)
                seq = conn.send_message(body, seq=i + 1)
                expected.append((seq, body))
                sent += 1
                emit("sent", seq=seq, bytes=len(body))
                _pause(args, i)
            conn.shutdown_write()
            emit("half-closed", sent=sent)
            frames = conn.read_until_eof()
            for frame, (seq, body) in zip(frames, expected):
                _check_echo(frame, seq, body)
                received += 1
                emit("received", seq=seq, bytes=len(body))
            if len(frames) != len(expected):
                raise WrongReply(f"{len(frames)} replies before EOF for {len(expected)} messages sent",
                                 phase="read")
            return sent, received
        for i in range(args.count):
            body = body_for(i + 1, args.size)
            began = emit.elapsed  # "sent" is stamped when sending began: round trips are never under-measured
            seq = conn.send_message(body, seq=i + 1)
            sent += 1
            emit("sent", at=began, seq=seq, bytes=len(body))
            conn.await_echo(seq, body)
            received += 1
            emit("received", seq=seq, bytes=len(body))
            _pause(args, i)
    return sent, received


def run_reliable(args: argparse.Namespace, config: RobustConfig, emit: Reporter) -> tuple[int, int]:
    acked = 0

    def on_event(name: str, facts: dict[str, object]) -> None:
        nonlocal acked
        if name == "acked":
            acked += 1
            emit("received", **facts)
        else:
            emit(name, **facts)

    backoff = Backoff(base=args.backoff_base, cap=max(args.backoff_cap, args.backoff_base),
                      deadline=args.reconnect_deadline)
    with ReliableSender(args.host, args.port, config, backoff=backoff, window=args.window,
                        on_event=on_event) as sender:
        for i in range(args.count):
            body = body_for(i + 1, args.size)
            seq = sender.send(body)
            emit("sent", seq=seq, bytes=len(body))
            _pause(args, i)
        sender.flush()
        return args.count, acked


def run_naive(args: argparse.Namespace, emit: Reporter) -> tuple[int, int]:
    from lab.sockets import naive  # written separately; only the naive workloads need it

    cls = naive.REGISTRY[args.impl]
    msglen = 5 + 8 + args.size
    sock = cls(msglen) if args.impl == "naive-fixed" else cls()  # type: ignore[call-arg]
    sent = received = 0
    try:
        sock.connect(args.host, args.port)
        emit("connected", host=args.host, port=args.port, impl=args.impl)
        for i in range(args.count):
            seq, body = i + 1, body_for(i + 1, args.size)
            began = emit.elapsed
            sock.mysend(naive.make_message(seq, body))
            sent += 1
            emit("sent", at=began, seq=seq, bytes=len(body))
            reply = sock.myreceive()
            decoder = Decoder()
            decoder.receive_data(reply)
            frames = list(decoder)
            if len(frames) != 1 or decoder.buffered:
                raise WrongReply(f"reply to seq {seq} is {len(reply)} bytes that hold {len(frames)} whole "
                                 f"frame(s) and {decoder.buffered} stray byte(s); expected one "
                                 f"{msglen}-byte ECHO", phase="read")
            _check_echo(frames[0], seq, body)
            received += 1
            emit("received", seq=seq, bytes=len(body))
            _pause(args, i)
    finally:
        sock.close()
    return sent, received


def main(argv: list[str] | None = None, *, out: IO[str] | None = None) -> int:
    """Run the driver; returns the exit status (0 done, 1 error reported, 2 bad arguments)."""
    out = out if out is not None else sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.impl != "robust" and (args.reliable or args.half_close):
            parser.error(f"--reliable and --half-close need --impl robust; got --impl {args.impl}")
        if args.reliable and args.half_close:
            parser.error("--reliable and --half-close cannot be combined: choose one workload")
        try:
            config = config_from(args)
        except ValueError as exc:
            parser.error(f"robust settings do not fit together: {exc}")
    except SystemExit as exc:  # argparse reports and exits; a caller of main() gets the status instead
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    emit = Reporter(out)
    sent = received = 0
    try:
        if args.impl == "robust":
            run = run_reliable if args.reliable else run_robust
            sent, received = run(args, config, emit)
        else:
            sent, received = run_naive(args, emit)
    except (LabError, OSError, RuntimeError, ValueError) as exc:
        emit("error", **error_facts(exc))
        return 1
    emit("done", sent=sent, received=received, elapsed=round(emit.elapsed, 6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
