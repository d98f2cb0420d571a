"""The lab's one exception tree, and the one place where OSError becomes a lab error.

Every failure the robust connection can report is one of these classes, so a
caller (or a test, or a scenario oracle) can tell *how* a conversation died by
its type alone, never by parsing a message::

    LabError
    ├── ConnectError                 the conversation never started
    │   ├── ConnectRefused           RST answered our SYN: nobody listens there
    │   ├── ConnectTimeout           no answer to our SYNs before the connect deadline
    │   ├── NoRoute                  the kernel has no path to that address
    │   ├── NameUnresolvable         the peer's name gave no address: .reason says why
    │   └── AddressUnavailable       no local port left for that destination (EADDRNOTAVAIL)
    ├── ConnectionLost               the conversation started and then ended
    │   ├── PeerClosed               clean EOF *between* messages (FIN, nothing pending)
    │   ├── IncompleteMessage        EOF *inside* a message: .received of .expected bytes
    │   └── PeerReset                the peer's kernel sent RST (ECONNRESET)
    │       └── BrokenPipe           we wrote after the connection was torn down (EPIPE)
    ├── PeerUnresponsive             the peer said nothing in time; .detected_by says how
    ├── SendStalled                  the peer stopped reading: a send made no progress in time
    └── ProtocolError                bytes arrived that are not our protocol
        ├── FrameTooLarge            a header announced more than the configured maximum
        └── BadFrame                 unknown frame type or a malformed payload

Use :func:`translating` around every socket call that may fail; it turns the
OSError into the matching class above and chains the original (``raise ... from
exc``), so the errno and the kernel's words are never lost::

    with translating("read", peer="server:7000"):
        chunk = sock.recv(65536)

Nothing else in the package catches OSError to re-raise it as a lab error.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import socket as _socket
from collections.abc import Iterator
from typing import Literal

from lab.sockets import errnos

Phase = Literal["resolve", "connect", "read", "write", "close"]
"""Which step of the conversation was under way when the error happened."""

Detector = Literal["read-deadline", "idle-deadline", "heartbeat", "keepalive", "user-timeout"]
"""Which mechanism noticed that the peer stopped answering."""

DETECTORS: tuple[str, ...] = ("read-deadline", "idle-deadline", "heartbeat", "keepalive", "user-timeout")


class LabError(Exception):
    """Base of every error the lab reports about a socket conversation.

    ``phase`` is the step that was under way, ``peer`` a printable address (or
    None), ``errno`` the kernel's errno when one was involved.
    """

    def __init__(self, message: str, *, phase: str | None = None, peer: str | None = None,
                 errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.phase = phase
        self.peer = peer
        self.errno = errno

    @property
    def kind(self) -> str:
        """Stable short name for reports and JSON events (the class name)."""
        return type(self).__name__

    def as_dict(self) -> dict[str, object]:
        """The facts of this error as plain JSON-able values."""
        out: dict[str, object] = {"error": self.kind, "message": self.message}
        if self.phase is not None:
            out["phase"] = self.phase
        if self.errno is not None:
            out["errno"] = self.errno
            # A resolver's failure carries its negative EAI code, which no errno table knows.
            out["errno_name"] = _errno.errorcode.get(self.errno) or _GAI_NAMES.get(self.errno, str(self.errno))
        for key in ("received", "expected", "detected_by", "after", "sent", "total", "reason", "gai_error"):
            if hasattr(self, key):
                out[key] = getattr(self, key)
        return out


class ConnectError(LabError):
    """The connection was never established."""


class ConnectRefused(ConnectError):
    """The peer's host answered the SYN with RST: nothing listens on that port."""


class ConnectTimeout(ConnectError):
    """No SYN-ACK arrived before the connect deadline (SYNs dropped, backlog full, host gone)."""


class NoRoute(ConnectError):
    """The local kernel knows no route to the address (ENETUNREACH, EHOSTUNREACH)."""


class NameUnresolvable(ConnectError):
    """The peer's host name could not be turned into an address, so no SYN was ever sent.

    ``reason`` is "resolver-error" when the resolver answered with a failure (a
    ``socket.gaierror``: ``gai_error`` names it, e.g. EAI_AGAIN or EAI_NONAME, and ``errno``
    holds its negative EAI code) or "resolver-timeout" when it said nothing before the
    connect deadline (``getaddrinfo`` itself has no timeout: the caller bounded it).
    """

    def __init__(self, message: str, *, reason: str, gai_error: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.reason = reason
        self.gai_error = gai_error


RESOLVE_REASONS = ("resolver-error", "resolver-timeout")

# getaddrinfo's failures (negative EAI_* codes, not errnos) by name, for messages and reports.
_GAI_NAMES = {getattr(_socket, n): n for n in dir(_socket) if n.startswith("EAI_")}

class AddressUnavailable(ConnectError):
    """The local kernel has no address or port to connect from (EADDRNOTAVAIL).

    On connect(): every ephemeral port is already in use towards that destination, so the
    kernel refuses at once, before sending anything. Retrying at once cannot help; a port
    comes free only when a connection to it closes (or leaves TIME_WAIT).
    """


class ConnectionLost(LabError):
    """An established connection ended."""


class PeerClosed(ConnectionLost):
    """The peer closed cleanly at a message boundary: recv returned b'' with nothing pending."""


class IncompleteMessage(ConnectionLost):
    """The stream ended in the middle of a message.

    ``received`` bytes of the frame (header included) had arrived out of
    ``expected``; ``expected`` is None when the header itself was cut short, so
    the length was never known.
    """

    def __init__(self, message: str, *, received: int, expected: int | None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.received = received
        self.expected = expected


class PeerReset(ConnectionLost):
    """The peer's kernel sent RST: the process died with unread data, or it aborted."""


class BrokenPipe(PeerReset):
    """We sent on a connection that the peer had already reset (EPIPE)."""


class PeerUnresponsive(LabError):
    """The peer stopped answering; ``detected_by`` names the mechanism and ``after`` the seconds waited."""

    def __init__(self, message: str, *, detected_by: str, after: float | None = None, **kw: object) -> None:
        if detected_by not in DETECTORS:
            raise ValueError(f"detected_by must be one of {', '.join(DETECTORS)}; got {detected_by!r}")
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.detected_by = detected_by
        self.after = after


class SendStalled(LabError):
    """A send made no progress before the write deadline: the peer is not reading.

    ``sent`` of ``total`` bytes of the message had been accepted by the kernel.
    """

    def __init__(self, message: str, *, sent: int, total: int, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.sent = sent
        self.total = total


class ProtocolError(LabError):
    """The bytes on the wire break the lab protocol."""


class FrameTooLarge(ProtocolError):
    """A header announced a payload bigger than the configured maximum."""


class BadFrame(ProtocolError):
    """An unknown frame type, or a payload too short for its type."""


def _describe(exc: OSError) -> str:
    name = _errno.errorcode.get(exc.errno, "") if exc.errno else ""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{name}: {text}" if name else text


def translate(exc: OSError, phase: Phase, *, peer: str | None = None,
              timeout_detector: str = "read-deadline",
              kernel_timeout_detector: str = "keepalive",
              sent: int = 0, total: int = 0, window_closed: bool = False) -> LabError:
    """Map one OSError raised during ``phase`` to the lab error that names it.

    ``socket.timeout`` (our own deadline) means different things per phase:
    connect → ConnectTimeout, read → PeerUnresponsive(``timeout_detector``),
    write → SendStalled(``sent``/``total``). ETIMEDOUT from the kernel means
    keepalive or TCP_USER_TIMEOUT gave up; the caller says which one it armed
    through ``kernel_timeout_detector``. ETIMEDOUT while writing with
    ``window_closed`` (all our data ACKed, the peer's window shut) is the
    kernel giving up on zero-window probes: the peer is alive and not reading,
    so it is SendStalled, not an unresponsive peer.
    """
    code = exc.errno
    where = f" ({peer})" if peer else ""
    kw = {"phase": phase, "peer": peer, "errno": code}
    if isinstance(exc, _socket.gaierror):
        # Before any errno check: an EAI code is negative and means nothing as an errno.
        # A gaierror built without a code (gaierror("text")) has errno None: no EAI name to give.
        name = None if code is None else _GAI_NAMES.get(code, str(code))
        said = exc.strerror or str(exc)
        return NameUnresolvable(f"the resolver could not resolve the name{where}: "
                                f"{f'{name}: ' if name else ''}{said}",
                                reason="resolver-error", gai_error=name, **kw)
    if phase == "resolve" and isinstance(exc, TimeoutError) and code is None:
        return NameUnresolvable(f"the resolver did not answer before the connect deadline{where}",
                                reason="resolver-timeout", **kw)
    # socket.timeout is TimeoutError with errno None: our own deadline expired.
    if isinstance(exc, TimeoutError) and code is None:
        if phase == "connect":
            return ConnectTimeout(f"connect timed out{where}", **kw)
        if phase == "write":
            return SendStalled(f"send stalled after {sent} of {total} bytes{where}: the peer is not reading",
                               sent=sent, total=total, **kw)
        return PeerUnresponsive(f"no data before the {timeout_detector}{where}",
                                detected_by=timeout_detector, **kw)
    if code in errnos.REFUSED:
        return ConnectRefused(f"connection refused{where}: nothing listens there", **kw)
    if code in errnos.UNREACHABLE:
        return NoRoute(f"no route to the peer{where}: {_describe(exc)}", **kw)
    if code in errnos.ADDRESS_UNAVAILABLE:
        return AddressUnavailable(f"no local port left to connect from{where}: {_describe(exc)}", **kw)
    if code in errnos.TIMED_OUT:
        if phase == "write" and window_closed:
            return SendStalled(f"the peer kept its receive window shut until the kernel gave up{where} "
                               f"after {sent} of {total} bytes: the peer is not reading", sent=sent, total=total,
                               **kw)
        if phase == "connect":
            return ConnectTimeout(f"connect timed out in the kernel{where}: {_describe(exc)}", **kw)
        return PeerUnresponsive(f"the kernel gave up on the peer{where} ({kernel_timeout_detector}): "
                                f"{_describe(exc)}", detected_by=kernel_timeout_detector, **kw)
    if code in errnos.BROKEN_PIPE:
        return BrokenPipe(f"broken pipe{where}: sent after the peer reset the connection", **kw)
    if code in errnos.RESET:
        return PeerReset(f"connection reset by peer{where}", **kw)
    return ConnectionLost(f"{phase} failed{where}: {_describe(exc)}", **kw)


@contextlib.contextmanager
def translating(phase: Phase, **kw: object) -> Iterator[None]:
    """Run a block of socket calls; re-raise any OSError as its lab error, chained."""
    try:
        yield
    except LabError:
        raise
    except OSError as exc:
        raise translate(exc, phase, **kw) from exc  # type: ignore[arg-type]


__all__ = [
    "LabError", "ConnectError", "ConnectRefused", "ConnectTimeout", "NoRoute", "NameUnresolvable", "AddressUnavailable",
    "ConnectionLost", "PeerClosed", "IncompleteMessage", "PeerReset", "BrokenPipe",
    "PeerUnresponsive", "SendStalled", "ProtocolError", "FrameTooLarge", "BadFrame",
    "DETECTORS", "translate", "translating",
]
