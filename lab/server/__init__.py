"""The lab's echo servers: the peers whose failures the socket code under test must survive.

Three implementations of one protocol (see :mod:`lab.server.protocol`):

    ThreadedServer   thread per connection, blocking sockets with short poll timeouts
    SelectorServer   one thread, non-blocking sockets multiplexed with ``selectors``
    ForkingServer    process per connection: the listener forks a child for each client

All take the same arguments and are chosen by name through :data:`SERVERS`::

    server = make_server("selectors", "127.0.0.1", 0, control_port=0, state_dir="/tmp/s")
    with server:
        ...

Run one from a shell with ``python -m lab.server --help``. For tests, use
:func:`lab.testing.running_server`, which also knows how to restart a server.

Modules: ``protocol`` (sans-IO core), ``log`` (delivery log), ``behaviour``
(failure scenarios), ``stats``, ``base`` (shared life cycle), ``threaded``,
``selecting``, ``forking``, ``control`` (control port), ``jsonlines`` (the newline-delimited
JSON protocol of the control ports and the fault agents), ``supervisor`` (PID 1
of the server container: ``python -m lab.server.supervisor``), ``__main__`` (CLI).

Standard library only: it runs in the lab's containers (``jsonlines`` also in the agents).
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported on first use (PEP 562): a process that needs only one small module of
# this package (the agent client's lab.server.jsonlines, in the healthcheck that runs every two
# seconds) must not import every server first.
_WHERE = {"BaseServer": "base", "Behaviour": "behaviour", "MODES": "behaviour", "control_request": "control",
          "ForkingServer": "forking", "DeliveryLog": "log", "body_checksum": "log", "ServerConnection": "protocol",
          "SelectorServer": "selecting", "ThreadedServer": "threaded"}


def __getattr__(name: str) -> Any:
    if name == "SERVERS":
        return servers()
    if name in _WHERE:
        return getattr(importlib.import_module(f"lab.server.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'lab.server' has no attribute {name!r}")


def servers() -> dict[str, Any]:
    """The three server implementations by name."""
    from lab.server.forking import ForkingServer
    from lab.server.selecting import SelectorServer
    from lab.server.threaded import ThreadedServer

    return {"threaded": ThreadedServer, "selectors": SelectorServer, "forking": ForkingServer}


def make_server(impl: str, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> Any:
    known = servers()
    try:
        cls = known[impl]
    except KeyError:
        raise ValueError(f"unknown server implementation {impl!r}; accepted: {', '.join(known)}") from None
    return cls(host, port, **kw)


__all__ = ["BaseServer", "Behaviour", "MODES", "DeliveryLog", "ServerConnection", "SelectorServer",
           "ThreadedServer", "ForkingServer", "SERVERS", "make_server", "control_request", "body_checksum"]
