"""The live view's HTTP server: the page, its events as a Server-Sent Events stream, and the run's files.

Routes (GET unless said):

    /                 the page (static/index.html), /app.js, /style.css: from the package
    /events           text/event-stream: every item of the hub, from the first (or after the
                      Last-Event-ID a reconnecting page sends), then live
    /files/NAME       a file of the run's results folder (its captures, report.html), read only;
                      a name with a slash or starting with a dot is refused
    POST /next        the page's "next" button (a paused demo waits for it)

It binds 127.0.0.1 only, on a free port unless told one, and serves from a daemon thread, so a
command that ends (or is interrupted) takes it down with ``close()`` or its context manager::

    with LiveView(hub, results=folder) as view:
        print(view.url)
        ... hub.publish("event", {...}) ...
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from lab.host.web.hub import EventHub

HOST = "127.0.0.1"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
FILE_TYPES = {".pcap": "application/vnd.tcpdump.pcap", ".html": "text/html; charset=utf-8",
              ".json": "application/json", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8",
              ".md": "text/markdown; charset=utf-8", ".png": "image/png"}


def static_file(name: str) -> bytes:
    return resources.files("lab.host.web").joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass   # the command's own output is the narration; request lines would interrupt it

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, kind = STATIC[path]
            self._send(HTTPStatus.OK, static_file(name), kind)
        elif path == "/events":
            self._events()
        elif path.startswith("/files/"):
            self._file(path.removeprefix("/files/"))
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found: the page is at /\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/next":
            self.server.hub.press_next()
            self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"only POST /next\n", "text/plain; charset=utf-8")

    def _file(self, name: str) -> None:
        folder = self.server.results
        if folder is None or not name or "/" in name or "\\" in name or name.startswith("."):
            self._send(HTTPStatus.NOT_FOUND, b"no such file of this run\n", "text/plain; charset=utf-8")
            return
        target = folder / name
        if not target.is_file():
            self._send(HTTPStatus.NOT_FOUND, b"no such file of this run (yet)\n", "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, target.read_bytes(), FILE_TYPES.get(target.suffix, "application/octet-stream"))

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        last = self.headers.get("Last-Event-ID", "")
        start = int(last) + 1 if last.isdigit() else 0
        try:
            for item in self.server.hub.follow(start=start, stop=self.server.closing.is_set):
                if item is None:
                    chunk = b": still here\n\n"      # a comment line: keeps proxies and the page patient
                else:
                    n, kind, data = item
                    chunk = f"id: {n}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return   # the page went away; a new one replays from the start


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: EventHub, results: Path | None) -> None:
        super().__init__(address, _Handler)
        self.hub, self.results = hub, results
        self.closing = threading.Event()


class LiveView:
    def __init__(self, hub: EventHub, *, results: Path | None = None, port: int = 0) -> None:
        self.hub = hub
        self._server = _Server((HOST, port), hub, results)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="live-view", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def start(self) -> "LiveView":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> "LiveView":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = ["LiveView", "HOST"]
