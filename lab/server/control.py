"""The control port: newline-delimited JSON commands that steer a running lab server.

One request per line, one JSON reply per line, on any number of connections::

    {"cmd": "ping"}                                  -> {"ok": true}
    {"cmd": "stats"}                                 -> {"ok": true, "stats": {...}}
    {"cmd": "behave", "mode": "abort", "after": 2}   -> {"ok": true, "behaviour": {...}}
    {"cmd": "behave", "accepting": false}            (fields not given keep their value)
    {"cmd": "reset"}                                 -> start-up behaviour, counters zeroed
                                                        (deliveries, digests and rejections kept)
    {"cmd": "delivered", "digests": ["0123456789abcdef", ...]}
                                                     -> {"ok": true, "counts": {"0123456789abcdef": 1, ...},
                                                         "refused": {"0123456789abcdef": 0, ...}}
    {"cmd": "rejections", "since": 1700000000.5}     -> {"ok": true, "rejections": [{"at": ..., "peer": "ip:port",
                                                         "head": hex, "received": n, "error": "...",
                                                         "kind": "BadFrame", "answer": "...", "conn": n}, ...]}
    anything else                                    -> {"ok": false, "error": "..."}

``delivered`` is how the grading judge checks submitted code against what the
server really received: each digest is ``blake2b(body, digest_size=8)`` of a
DATA body (:func:`lab.server.log.body_digest`), at most :data:`MAX_DIGESTS_PER_REQUEST`
per request; ``counts`` is how many times each was delivered (0: never, or
forgotten beyond the log's bound), ``refused`` how many times it came again in
its session and was refused as a duplicate. ``rejections`` lists, oldest
first, the last connections that ended because what they sent broke the
protocol (``since``, optional: only those at or after that unix time).

It runs in its own small threaded server (:mod:`lab.server.jsonlines`) for both server
implementations, so it keeps answering while the data side is told to stop
reading or accepting. :func:`control_request` is the client side, for tests and scripts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lab.server import jsonlines
from lab.server.jsonlines import JsonLinesServer
from lab.server.log import is_digest

if TYPE_CHECKING:
    from lab.server.base import BaseServer

COMMANDS = ("ping", "stats", "behave", "reset", "delivered", "rejections")
MAX_DIGESTS_PER_REQUEST = 4096
MAX_LINE = 128 * 1024
"""A request line's limit: a full ``delivered`` request (4096 digests, 19 bytes each as JSON) is about 78 KB."""
DIGESTS_ACCEPTED = (f'"digests" is a list of at most {MAX_DIGESTS_PER_REQUEST} digests, each exactly 16 lowercase '
                    f'hex characters (blake2b, digest_size=8, of a DATA body)')
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
    if cmd == "delivered":
        return _delivered(server, request)
    if cmd == "rejections":
        return _rejections(server, request)
    return {"ok": False, "error": f"unknown command {cmd!r}; accepted: {', '.join(COMMANDS)}"}


def _unknown_fields(request: dict[str, Any], cmd: str, accepted: tuple[str, ...]) -> dict[str, Any] | None:
    extra = sorted(k for k in request if k != "cmd" and k not in accepted)
    if not extra:
        return None
    return {"ok": False, "error": f"unknown field(s) {', '.join(map(repr, extra))} for {cmd!r}; "
                                  f"it takes {', '.join(map(repr, accepted))}"}


def _delivered(server: "BaseServer", request: dict[str, Any]) -> dict[str, Any]:
    if (bad := _unknown_fields(request, "delivered", ("digests",))) is not None:
        return bad
    digests = request.get("digests")
    if not isinstance(digests, list):
        return {"ok": False, "error": f"{DIGESTS_ACCEPTED}; got {type(digests).__name__}"}
    if len(digests) > MAX_DIGESTS_PER_REQUEST:
        return {"ok": False, "error": f"{DIGESTS_ACCEPTED}; got {len(digests)}: split them over several requests"}
    for i, d in enumerate(digests):
        if not is_digest(d):
            return {"ok": False, "error": f"{DIGESTS_ACCEPTED}; digests[{i}] is {_short(d)}"}
    assert server.log is not None, "the control port runs only while the server does"
    return {"ok": True, "counts": server.log.delivered_counts(digests), "refused": server.log.refused_counts(digests)}


def _rejections(server: "BaseServer", request: dict[str, Any]) -> dict[str, Any]:
    if (bad := _unknown_fields(request, "rejections", ("since",))) is not None:
        return bad
    since = request.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float))
                              or not math.isfinite(since)):
        return {"ok": False, "error": f'"since" is optional, a unix time in seconds (a number); got {_short(since)}'}
    return {"ok": True, "rejections": server.rejections.since(since)}


def _short(value: Any) -> str:
    """A bad value, quoted but never long: the reply must stay one short line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


__all__ = ["ControlServer", "handle_command", "control_request", "COMMANDS", "MAX_DIGESTS_PER_REQUEST"]
