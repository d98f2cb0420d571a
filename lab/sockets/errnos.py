"""Named sets of errno values, grouped by what they mean for a TCP conversation.

:mod:`lab.sockets.errors` matches an OSError's errno against these sets, so the
meaning of each errno is decided here once. The comments note where platforms
differ; the lab itself runs on Linux, but the sets are written so that code
reading them on macOS or Windows gets the same answer.
"""

from __future__ import annotations

import errno


def _present(*names: str) -> frozenset[int]:
    # Some names exist only on some platforms (WSAE* on Windows, EPROTOTYPE
    # meaning differs); take those that this platform defines.
    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


#: The peer's kernel answered our SYN with RST. On Windows this is WSAECONNREFUSED.
REFUSED = _present("ECONNREFUSED", "WSAECONNREFUSED")

#: The peer's kernel reset an established connection. ECONNABORTED is what
#: Windows (WSAECONNABORTED) and some BSDs report when the local stack
#: aborted the connection after a reset or a retransmission failure.
RESET = _present("ECONNRESET", "ECONNABORTED", "WSAECONNRESET", "WSAECONNABORTED")

#: We wrote after the connection was torn down. Linux says EPIPE (and raises
#: SIGPIPE, which CPython ignores); some BSDs say ESHUTDOWN after shutdown().
#: macOS can also return EPROTOTYPE for a send racing a teardown.
BROKEN_PIPE = _present("EPIPE", "ESHUTDOWN")

#: The kernel gave up: keepalive probes unanswered, TCP_USER_TIMEOUT expired,
#: or (on connect) the SYN retries ran out.
TIMED_OUT = _present("ETIMEDOUT", "WSAETIMEDOUT")

#: No route: the local kernel refuses before sending anything (no default
#: route), or an ICMP unreachable came back. EHOSTDOWN is BSD/macOS only.
UNREACHABLE = _present("ENETUNREACH", "EHOSTUNREACH", "EHOSTDOWN", "WSAENETUNREACH", "WSAEHOSTUNREACH")

#: No local address to connect from: on connect(), every ephemeral port is taken for that
#: destination (the port range is exhausted). Linux says EADDRNOTAVAIL, as for a bind() to an
#: address the host does not have; Windows says WSAEADDRNOTAVAIL.
ADDRESS_UNAVAILABLE = _present("EADDRNOTAVAIL", "WSAEADDRNOTAVAIL")

#: A non-blocking call could not proceed yet; not a failure. EAGAIN and
#: EWOULDBLOCK are the same number on Linux but distinct on some platforms.
WOULD_BLOCK = _present("EAGAIN", "EWOULDBLOCK", "EINPROGRESS", "EALREADY", "WSAEWOULDBLOCK")

__all__ = ["REFUSED", "RESET", "BROKEN_PIPE", "TIMED_OUT", "UNREACHABLE", "ADDRESS_UNAVAILABLE", "WOULD_BLOCK"]
