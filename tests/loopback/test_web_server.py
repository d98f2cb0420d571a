"""The live view's server on 127.0.0.1: the page from the package, the event stream, the run's files, and nothing else."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from lab.host.web.hub import EventHub
from lab.host.web.server import LiveView


def get(view: LiveView, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str, bytes]:
    host, port = view.url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        res = conn.getresponse()
        return res.status, res.getheader("Content-Type") or "", res.read()
    finally:
        conn.close()


@pytest.fixture
def view(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "server.pcap").write_bytes(b"\xd4\xc3\xb2\xa1pcap")
    hub = EventHub(clock=lambda: 5.0)
    with LiveView(hub, results=tmp_path) as v:
        yield v


def test_it_listens_on_loopback_only_and_serves_the_page_from_the_package(view: LiveView) -> None:
    assert view.url.startswith("http://127.0.0.1:")
    status, kind, body = get(view, "/")
    assert (status, kind) == (200, "text/html; charset=utf-8") and b'<script src="/app.js">' in body
    assert get(view, "/app.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert get(view, "/style.css")[:2] == (200, "text/css; charset=utf-8")
    assert b"https://" not in get(view, "/")[2] + get(view, "/app.js")[2]   # nothing from the internet


def test_the_stream_carries_every_item_numbered_and_resumes_after_the_last_one_seen(view: LiveView) -> None:
    view.hub.publish("event", {"t": 0.2, "what": "fault in place: freeze"})
    view.hub.finish({"ok": True})
    status, kind, body = get(view, "/events")
    assert (status, kind) == (200, "text/event-stream")
    blocks = [b for b in body.decode().split("\n\n") if b]
    assert blocks == [f'id: 0\nevent: event\ndata: {json.dumps({"t": 0.2, "what": "fault in place: freeze", "published": 5.0})}',
                      f'id: 1\nevent: end\ndata: {json.dumps({"ok": True, "published": 5.0})}']
    resumed = get(view, "/events", headers={"Last-Event-ID": "0"})[2].decode()
    assert resumed.startswith("id: 1\nevent: end\n")


def test_files_are_the_runs_own_and_nothing_outside_it(view: LiveView) -> None:
    assert get(view, "/files/server.pcap") == (200, "application/vnd.tcpdump.pcap", b"\xd4\xc3\xb2\xa1pcap")
    for bad in ("/files/../etc/passwd", "/files/%2e%2e%2fetc", "/files/.env", "/files/", "/files/missing.pcap",
                "/nowhere"):
        assert get(view, bad)[0] == 404, bad


def test_the_next_button_reaches_the_hub(view: LiveView) -> None:
    assert get(view, "/next", method="POST")[0] == 204
    assert view.hub.wait_next(1.0) is True
    assert get(view, "/events", method="POST")[0] == 404
