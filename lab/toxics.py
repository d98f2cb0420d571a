"""The one wrapper around Toxiproxy's HTTP API.

Everything in the lab that adds, changes or removes a toxic goes through
:class:`Toxiproxy`. It is built on toxiproxy-python (its error classes and
its response checks), and replaces only what that library lacks:

* toxiproxy-python keeps host and port as process-wide class attributes;
  here each client carries its own base URL, so two labs never cross wires.
* it sends requests with no timeout (a hung API would hang a test); here
  every request has a deadline.
* it cannot update a toxic in place, and drops the server's error text on
  the floor in places; here a rejected toxic raises :class:`ToxicRejected`
  carrying the server's own message.

Usage::

    api = Toxiproxy("http://127.0.0.1:8474")
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
from collections.abc import Iterator
from typing import Any

import requests
from toxiproxy.api import validate_response
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")
STREAMS = ("upstream", "downstream")


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API could not be reached or answered with an error."""


class ToxicRejected(ToxiproxyError):
    """The Toxiproxy server refused a toxic; the message is the server's own."""


class Toxiproxy:
    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        url = self.base_url + path
        try:
            response = self._http.request(method, url, json=json, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ToxiproxyError(f"Toxiproxy API at {self.base_url} did not answer {method} {path}: {exc}") from exc
        text = response.text.strip()
        try:
            validate_response(response)
        except (InvalidToxic, NotFound, ProxyExists) as exc:
            cls = ToxicRejected if "/toxics" in path else ToxiproxyError
            raise cls(f"Toxiproxy refused {method} {path}: {_server_message(text)}") from exc
        if response.status_code >= 400:
            raise ToxiproxyError(f"Toxiproxy answered {response.status_code} to {method} {path}: "
                                 f"{_server_message(text)}")
        return response.json() if text else None

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
        import json
        data = json.loads(text)
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
    except ValueError:
        pass
    return text or "(no message)"
