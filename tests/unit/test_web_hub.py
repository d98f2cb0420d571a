"""The live view's event hub: every listener gets every item in order, from where it asks, and ends with the run."""

from __future__ import annotations

import threading

import pytest

from lab.host.web.hub import EventHub


def test_a_listener_gets_everything_from_the_start_then_the_end() -> None:
    hub = EventHub(clock=lambda: 100.0)
    hub.publish("event", {"t": 0.1, "what": "connected"})
    hub.publish("step", {"title": "1. What the lab does"})
    hub.finish({"ok": True})
    got = list(hub.follow())
    assert got == [(0, "event", {"t": 0.1, "what": "connected", "published": 100.0}),
                   (1, "step", {"title": "1. What the lab does", "published": 100.0}),
                   (2, "end", {"ok": True, "published": 100.0})]
    assert list(hub.follow(start=2)) == [got[2]]          # a page that reconnects goes on from where it was


def test_a_live_listener_sees_items_as_they_come_and_keep_alives_in_between() -> None:
    hub = EventHub()
    seen: list[object] = []
    done = threading.Event()

    def listen() -> None:
        for item in hub.follow(poll=0.05):
            seen.append(item if item is None else item[1])
        done.set()

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert not done.wait(0.2)                               # nothing yet: it waits, with keep-alives
    hub.publish("event", {"what": "fault in place: freeze"})
    hub.finish({"ok": False})
    assert done.wait(2.0)
    assert None in seen and [s for s in seen if s is not None] == ["event", "end"]


def test_nothing_is_published_after_the_end_and_finish_is_once() -> None:
    hub = EventHub()
    hub.finish({"ok": True})
    hub.finish({"ok": False})
    assert [k for _, k, _ in hub.follow()] == ["end"] and hub.finished
    with pytest.raises(RuntimeError, match="finished"):
        hub.publish("event", {})


def test_the_next_button_is_a_one_shot_with_a_deadline() -> None:
    hub = EventHub()
    assert hub.wait_next(0.01) is False
    hub.press_next()
    assert hub.wait_next(0.01) is True
    assert hub.wait_next(0.01) is False                   # armed again
