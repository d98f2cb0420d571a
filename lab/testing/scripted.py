"""A fake socket that plays a script: each send/recv/connect call takes the next step.

For unit tests of socket code that must see one precise sequence of kernel
answers (a 3-byte partial send, a 0-byte send, recv returning b"" mid-message,
ECONNRESET on the third call) without any timing or network::

    sock = ScriptedSocket([Send(3), Send(100), Recv(b"\\x00\\x00"), Recv(b""),
                           Fail("recv", ConnectionResetError(104, "reset"))])

``Send(n)`` accepts at most n bytes of what is offered (``Send(0)`` returns 0);
``Recv(data)`` returns data, cut to the recv's bufsize with the rest kept for the
next recv; ``Fail(op, exc)`` raises exc from that op. A call that does not match
the next step, or comes after the script ran out, raises ScriptError (an
AssertionError), so a test never hangs on a fake. What was sent is in ``sent``;
every call is in ``calls``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Union

Op = Literal["connect", "send", "recv", "close"]


@dataclasses.dataclass
class Send:
    accept: int


@dataclasses.dataclass
class Recv:
    data: bytes


@dataclasses.dataclass
class Fail:
    op: Op
    exc: BaseException


Step = Union[Send, Recv, Fail]


class ScriptError(AssertionError):
    """The code under test made a call the script did not expect."""


class ScriptedSocket:
    def __init__(self, steps: list[Step]) -> None:
        self.steps: list[Step] = list(steps)
        self.sent = bytearray()
        self.calls: list[tuple[str, Any]] = []
        self.closed = False
        self.address: Any = None

    @property
    def done(self) -> bool:
        return not self.steps

    def _next(self, op: Op) -> Step | None:
        if not self.steps:
            raise ScriptError(f"{op}() called after the script ran out; calls so far: {self.calls}")
        step = self.steps[0]
        if isinstance(step, Fail):
            if step.op != op:
                raise ScriptError(f"{op}() called but the script expected a failing {step.op}()")
            self.steps.pop(0)
            raise step.exc
        expected = "send" if isinstance(step, Send) else "recv"
        if expected != op:
            if op in ("connect", "close"):
                return None  # connect/close succeed silently unless a Fail step says otherwise
            raise ScriptError(f"{op}() called but the script's next step is {step!r}")
        return step

    def connect(self, address: Any) -> None:
        self.calls.append(("connect", address))
        if self.steps and isinstance(self.steps[0], Fail) and self.steps[0].op == "connect":
            self._next("connect")
        self.address = address

    def send(self, data: bytes | bytearray | memoryview) -> int:
        data = bytes(data)
        self.calls.append(("send", len(data)))
        step = self._next("send")
        assert isinstance(step, Send)
        self.steps.pop(0)
        n = min(step.accept, len(data))
        self.sent += data[:n]
        return n

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(bytes(data))
        while view:
            n = self.send(view)
            if n == 0:
                raise ScriptError("sendall() got a 0-byte send; a real sendall would spin here")
            view = view[n:]

    def recv(self, bufsize: int) -> bytes:
        self.calls.append(("recv", bufsize))
        step = self._next("recv")
        assert isinstance(step, Recv)
        if len(step.data) > bufsize:
            head, step.data = step.data[:bufsize], step.data[bufsize:]
            return head
        self.steps.pop(0)
        return step.data

    def close(self) -> None:
        self.calls.append(("close", None))
        if self.steps and isinstance(self.steps[0], Fail) and self.steps[0].op == "close":
            self._next("close")
        self.closed = True

    def settimeout(self, timeout: float | None) -> None:
        self.calls.append(("settimeout", timeout))

    def setsockopt(self, *args: Any) -> None:
        self.calls.append(("setsockopt", args))


__all__ = ["ScriptedSocket", "Send", "Recv", "Fail", "Step", "ScriptError"]
