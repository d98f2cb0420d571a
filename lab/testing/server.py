"""Run a lab server in background threads on 127.0.0.1 for a test, and restart it on the same state.

::

    from lab.testing import running_server

    with running_server("selectors") as srv:           # a fresh temporary state dir
        sock = socket.create_connection(("127.0.0.1", srv.port))
        ...
        srv.behave(mode="abort", after=2)               # through the control port
        srv.restart()                                   # same port, same delivery log
        assert srv.stats()["sessions"][sid.hex()]["count"] == 10

The server only ever binds 127.0.0.1. ``stop()``/``restart()`` return within
about a second; leaving the ``with`` block stops it and removes the temporary
state dir (a ``state_dir`` you pass in is left alone). The last events are kept
in ``srv.events`` for failure messages.
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.sockets.framing import DEFAULT_MAX_PAYLOAD
from lab.server import BaseServer, Behaviour, control_request, make_server

HOST = "127.0.0.1"


class RunningServer:
    """A handle on a lab server that survives restarts: the port and state dir stay the same."""

    host = HOST

    def __init__(self, impl: str, state_dir: Path, *, backlog: int = 128, behaviour: Behaviour | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, control: bool = True, port: int = 0,
                 keep_events: int = 2000) -> None:
        self.impl = impl
        self.state_dir = state_dir
        self._kw: dict[str, Any] = dict(backlog=backlog, behaviour=behaviour, max_payload=max_payload)
        self._control = control
        self._port = port
        self._control_port = 0
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep_events)
        self.server: BaseServer | None = None
        self.starts = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self._port)

    @property
    def control_port(self) -> int | None:
        return self._control_port if self._control else None

    @property
    def running(self) -> bool:
        return self.server is not None

    def start(self) -> "RunningServer":
        if self.server is not None:
            raise RuntimeError("already running; call stop() or restart()")
        server = make_server(self.impl, HOST, self._port, state_dir=self.state_dir,
                             control_port=self._control_port if self._control else None,
                             emit=self.events.append, **self._kw)
        server.start()
        self.server = server
        self._port = server.port  # the first start picks a free port; restarts reuse it
        if self._control:
            assert server.control_port is not None
            self._control_port = server.control_port
        self.starts += 1
        return self

    def stop(self, timeout: float = 2.0) -> None:
        if self.server is not None:
            self.server.stop(timeout)
            self.server = None

    def restart(self) -> "RunningServer":
        """Stop, then start a new server process-equivalent on the same port and state dir."""
        self.stop()
        return self.start()

    def stats(self) -> dict[str, Any]:
        """The running server's stats, read directly (works with the control port disabled)."""
        if self.server is None:
            raise RuntimeError("the server is stopped")
        return self.server.stats()

    def control(self, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """One command through the real control port."""
        if not self._control:
            raise RuntimeError("started with control=False")
        return control_request(HOST, self._control_port, request, timeout=timeout)

    def behave(self, **changes: Any) -> dict[str, Any]:
        """Change the behaviour through the control port; raises ValueError if the server refuses."""
        if not self._control:
            assert self.server is not None
            return self.server.behave(**changes).as_dict()
        reply = self.control({"cmd": "behave", **changes})
        if not reply.get("ok"):
            raise ValueError(reply.get("error"))
        return reply["behaviour"]

    def reset(self) -> None:
        if self._control:
            self.control({"cmd": "reset"})
        elif self.server is not None:
            self.server.reset()


@contextlib.contextmanager
def running_server(impl: str = "threaded", *, state_dir: str | Path | None = None, backlog: int = 128,
                   behaviour: Behaviour | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                   control: bool = True) -> Iterator[RunningServer]:
    """A started server on 127.0.0.1 (port 0), stopped on exit; see the module docstring."""
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="lab-server-"))
        srv = RunningServer(impl, Path(state_dir), backlog=backlog, behaviour=behaviour,
                            max_payload=max_payload, control=control)
        srv.start()
        stack.callback(srv.stop)
        yield srv


__all__ = ["running_server", "RunningServer", "HOST"]
