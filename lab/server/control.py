"""The control port: newline-delimited JSON commands that steer a running lab server.

One request per line, one JSON reply per line, on any number of connections::

    {"cmd": "ping"}                                  -> {"ok": true}
    {"cmd": "stats"}                                 -> {"ok": true, "stats": {...}}
    {"cmd": "behave", "mode": "abort", "after": 2}   -> {"ok": true, "behaviour": {...}}
    {"cmd": "behave", "accepting": false}            (fields not given keep their value)
    {"cmd": "reset"}                                 -> start-up behaviour, counters zeroed
    anything else                                    -> {"ok": false, "error": "..."}

It runs in its own small threaded server (:mod:`lab.server.jsonlines`) for both server
implementations, so it keeps answering while the data side is told to stop
reading or accepting. :func:`control_request` is the client side, for tests and scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.server import jsonlines
from lab.server.jsonlines import JsonLinesServer

if TYPE_CHECKING:
    from lab.server.base import BaseServer

COMMANDS = ("ping", "stats", "behave", "reset")
MAX_LINE = 64 * 1024
REPLY_TIMEOUT = 5.0


def handle_command(server: "BaseServer", request: Any) -> dict[str, Any]:
    """Run one decoded request against ``server``; never raises for a bad request."""
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return {"ok": False, "error": 'a request is a JSON object with a "cmd" string; '
                                      f"accepted commands: {', '.join(COMMANDS)}"}
    cmd = request["cmd"]
    if cmd == "ping":
        return {"ok": True}
    if cmd == "stats":
        return {"ok": True, "stats": server.stats()}
    if cmd == "behave":
        changes = {k: v for k, v in request.items() if k != "cmd"}
        try:
            behaviour = server.behave(**changes)
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "behaviour": behaviour.as_dict()}
    if cmd == "reset":
        server.reset()
        return {"ok": True, "behaviour": server.behaviour().as_dict()}
    return {"ok": False, "error": f"unknown command {cmd!r}; accepted: {', '.join(COMMANDS)}"}


class ControlServer(JsonLinesServer):
    """The control port: :mod:`lab.server.jsonlines` framing and bounds, :func:`handle_command` for each request.

    No idle timeout and no connection limit; an oversized line closes the
    connection without a reply, and an empty line is answered as non-JSON.
    """

    name = "control"
    skip_blank_lines = False
    stop_timeout = 1.0

    def __init__(self, server: "BaseServer", host: str, port: int, poll_interval: float = 0.1) -> None:
        self._server = server
        super().__init__(host, port, poll=poll_interval, max_line=MAX_LINE, reply_timeout=REPLY_TIMEOUT)

    def handle(self, request: Any) -> dict[str, Any]:
        return handle_command(self._server, request)

    def not_json(self, exc: ValueError) -> dict[str, Any]:
        return {"ok": False, "error": f"not JSON: {exc}"}

    def too_long(self) -> None:
        return None


def control_request(host: str, port: int, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to a control port and return its decoded reply."""
    return jsonlines.request(host, port, request, timeout,
                             closed=lambda _n: f"control port {host}:{port} closed before replying to {request!r}")


__all__ = ["ControlServer", "handle_command", "control_request", "COMMANDS"]
