"""lab.inlab.toxics against scripted HTTP servers on loopback: errors carry the server's words, nothing waits forever."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.inlab.toxics import Toxiproxy, ToxicRejected, ToxiproxyError


class _Handler(BaseHTTPRequestHandler):
    status = 200
    body: object = {}
    seen: list[tuple[str, str, object]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        type(self).seen.append((self.command, self.path, sent))
        data = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[type[_Handler], str]]:
    handler = type("H", (_Handler,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_toxic_is_posted_with_its_attributes(fake: tuple[type[_Handler], str]) -> None:
    handler, url = fake
    handler.body = {"name": "latency_downstream", "type": "latency"}
    Toxiproxy(url).add_toxic("threaded", "latency", latency=200, jitter=0)
    assert handler.seen == [("POST", "/proxies/threaded/toxics",
                             {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                              "toxicity": 1.0, "attributes": {"latency": 200, "jitter": 0}})]


def test_a_refused_toxic_carries_the_servers_message(fake: tuple[type[_Handler], str]) -> None:
    handler, url = fake
    handler.status, handler.body = 409, {"error": "toxic already exists", "status": 409}
    with pytest.raises(ToxicRejected, match=r"\(409\): toxic already exists"):
        Toxiproxy(url).add_toxic("threaded", "latency", latency=1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "lag"}, "unknown toxic type 'lag'; accepted: latency, bandwidth"),
    ({"kind": "latency", "stream": "sideways"}, "unknown stream 'sideways'; accepted: upstream, downstream"),
    ({"kind": "latency", "toxicity": 1.5}, "toxicity must be between 0.0 and 1.0"),
])
def test_bad_toxics_are_refused_before_any_request(fake: tuple[type[_Handler], str], kwargs: dict,
                                                   message: str) -> None:
    handler, url = fake
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        Toxiproxy(url).add_toxic("threaded", kind, **kwargs)
    assert handler.seen == []


def test_a_silent_api_times_out_instead_of_hanging() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts (in the kernel) and never answers
    try:
        started = time.monotonic()
        with pytest.raises(ToxiproxyError, match="did not answer POST /reset"):
            Toxiproxy(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5).reset()
        assert time.monotonic() - started < 2.0
    finally:
        listener.close()


def test_a_bad_url_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="must look like http://HOST:PORT"):
        Toxiproxy("toxiproxy:8474")
