"""The one wrapper around Toxiproxy's HTTP API.

Everything in the lab that adds, changes or removes a toxic goes through
:class:`Toxiproxy`. toxiproxy-python is the client we build on, but two of its
properties rule out using its transport everywhere, so this module replaces
exactly that part:

* scenarios inject toxics from *inside* the lab (the client container), where
  only the standard library exists; toxiproxy-python needs ``requests`` and
  ``future``. The transport here is ``http.client``.
* toxiproxy-python keeps host and port as process-wide class attributes and
  sends requests with no timeout (a hung API would hang a test); here each
  client carries its own address and every request has a deadline.

What this adds: updating a toxic in place, a context manager that always
removes its toxic, and errors that carry the server's own message
(:class:`ToxicRejected`). On the host, :func:`lab.host.toxiproxy_client.python_client`
hands out toxiproxy-python's own ``Toxiproxy`` aimed at one lab (the test fixtures
use it to reset the proxies after every test).

Usage::

    api = Toxiproxy("http://toxiproxy:8474")
    with api.toxic("threaded", "latency", stream="downstream", latency=200, jitter=0):
        ...   # traffic through the proxy is delayed here
    api.reset()   # every proxy enabled, every toxic gone

Toxic attributes and units are Toxiproxy's own (README, "Toxics"): latency
and jitter in ms, bandwidth ``rate`` in KB/s (1 KB = 1000 bytes), slicer
``average_size``/``size_variation`` in bytes and ``delay`` in microseconds,
limit_data ``bytes``, timeout and slow_close in ms. ``stream`` "upstream" is
client → server, "downstream" server → client.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any, Literal, get_args

from lab.addresses import TOXIPROXY_API_PORT
from lab.toolerrors import SetupError

TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")
Stream = Literal["upstream", "downstream"]   # upstream: client → server; downstream: server → client
STREAMS: tuple[Stream, ...] = get_args(Stream)


class ToxiproxyError(SetupError):
    """The Toxiproxy API could not be reached or answered with an error."""


class ToxicRejected(ToxiproxyError):
    """The Toxiproxy server refused a toxic; the message is the server's own."""


class Toxiproxy:
    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"Toxiproxy URL must look like http://HOST:PORT; got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host, self.port = parsed.hostname, parsed.port or TOXIPROXY_API_PORT
        self.timeout = timeout

    def close(self) -> None:
        """Nothing to release: each request uses its own short-lived connection."""

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            status, text = response.status, response.read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            raise ToxiproxyError(f"Toxiproxy API at {self.base_url} did not answer {method} {path}: {exc}") from exc
        finally:
            conn.close()
        if status >= 400:
            cls = ToxicRejected if "/toxics" in path else ToxiproxyError
            raise cls(f"Toxiproxy refused {method} {path} ({status}): {_server_message(text)}")
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text  # /version answers plain text on some releases

    # Proxies -----------------------------------------------------------------
    def version(self) -> str:
        return str(self._call("GET", "/version") or "")

    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/proxies")

    def proxy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/proxies/{name}")

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabling a proxy closes its connections and its listener (new connects are refused)."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # Toxics ------------------------------------------------------------------
    def add_toxic(self, proxy: str, kind: str, *, stream: str = "downstream", toxicity: float = 1.0,
                  name: str | None = None, **attributes: int | float) -> dict[str, Any]:
        if kind not in TOXIC_TYPES:
            raise ValueError(f"unknown toxic type {kind!r}; accepted: {', '.join(TOXIC_TYPES)}")
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; accepted: {', '.join(STREAMS)}")
        if not 0.0 <= toxicity <= 1.0:
            raise ValueError(f"toxicity must be between 0.0 and 1.0; got {toxicity}")
        body = {"name": name or f"{kind}_{stream}", "type": kind, "stream": stream,
                "toxicity": toxicity, "attributes": attributes}
        return self._call("POST", f"/proxies/{proxy}/toxics", body)

    def update_toxic(self, proxy: str, name: str, **attributes: int | float) -> dict[str, Any]:
        return self._call("POST", f"/proxies/{proxy}/toxics/{name}", {"attributes": attributes})

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/proxies/{proxy}/toxics")

    @contextlib.contextmanager
    def toxic(self, proxy: str, kind: str, **kw: Any) -> Iterator[dict[str, Any]]:
        """A toxic for the duration of a block; removed afterwards even if the block fails."""
        created = self.add_toxic(proxy, kind, **kw)
        try:
            yield created
        finally:
            with contextlib.suppress(ToxiproxyError):
                self.remove_toxic(proxy, created["name"])


def _server_message(text: str) -> str:
    # Toxiproxy answers errors as {"error": "...", "status": N}.
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
    except ValueError:
        pass
    return text or "(no message)"
