"""RobustConfig: the defaults the scenarios quote as bounds, and clear errors for bad settings."""

from __future__ import annotations

import dataclasses

import pytest

from lab.sockets.framing import DEFAULT_MAX_PAYLOAD
from lab.sockets.robust import RobustConfig
from lab.sockets.timeouts import Timeouts


def test_defaults_are_the_documented_ones():
    c = RobustConfig()
    assert c.timeouts == Timeouts()
    assert (c.keepalive, c.keepalive_idle, c.keepalive_interval, c.keepalive_count) == (True, 1, 1, 3)
    assert c.user_timeout_ms == 3000
    assert (c.heartbeat_interval, c.dead_after) == (1.0, 3.0)
    assert c.max_payload == DEFAULT_MAX_PAYLOAD
    assert c.nodelay is True


def test_bounds_follow_from_the_settings():
    assert RobustConfig().bounds() == {
        "connect": 3.0, "frozen_peer": 4.0, "stuck_reply": 5.0, "send_stall": 2.0,
        "idle_peer_gone": 4, "unacked_data": 3.0,
    }
    quiet = RobustConfig(heartbeat_interval=None, keepalive=False, user_timeout_ms=None,
                         timeouts=Timeouts(read=2.0))
    b = quiet.bounds()
    assert b["frozen_peer"] == 2.0  # without heartbeats only the read deadline catches a frozen peer
    assert b["idle_peer_gone"] is None and b["unacked_data"] is None


def test_is_frozen_and_replace_makes_a_copy():
    c = RobustConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.dead_after = 1.0  # type: ignore[misc]
    d = c.replace(dead_after=5.0)
    assert (c.dead_after, d.dead_after) == (3.0, 5.0)


@pytest.mark.parametrize(("kwargs", "field", "accepted"), [
    ({"timeouts": 3.0}, "'timeouts'", "Timeouts"),
    ({"keepalive": 1}, "'keepalive'", "True or False"),
    ({"nodelay": "yes"}, "'nodelay'", "True or False"),
    ({"keepalive_idle": 0.5}, "'keepalive_idle'", "whole number of seconds >= 1"),
    ({"keepalive_interval": 0}, "'keepalive_interval'", "whole number of seconds >= 1"),
    ({"keepalive_count": 0}, "'keepalive_count'", "1 to 127"),
    ({"keepalive_count": 2.0}, "'keepalive_count'", "1 to 127"),
    ({"user_timeout_ms": -1}, "'user_timeout_ms'", "milliseconds >= 0"),
    ({"user_timeout_ms": 1.5}, "'user_timeout_ms'", "milliseconds >= 0"),
    ({"heartbeat_interval": 0}, "'heartbeat_interval'", "> 0 or None"),
    ({"heartbeat_interval": float("inf")}, "'heartbeat_interval'", "finite"),
    ({"dead_after": None}, "'dead_after'", "> 0"),
    ({"dead_after": 1.0}, "'dead_after'", "greater than heartbeat_interval"),
    ({"max_payload": 4}, "'max_payload'", "from 8 to"),
    ({"max_payload": True}, "'max_payload'", "from 8 to"),
])
def test_bad_settings_say_which_field_what_value_and_what_is_accepted(kwargs, field, accepted):
    with pytest.raises(ValueError) as info:
        RobustConfig(**kwargs)
    text = str(info.value)
    assert field in text and accepted in text
    assert repr(next(iter(kwargs.values()))) in text


def test_whole_second_floats_are_accepted_for_keepalive():
    c = RobustConfig(keepalive_idle=2.0, keepalive_interval=1.0)
    assert (c.keepalive_idle, c.keepalive_interval) == (2, 1)
    assert isinstance(c.keepalive_idle, int)


def test_heartbeats_off_needs_no_ordering_with_dead_after():
    assert RobustConfig(heartbeat_interval=None, dead_after=0.1).heartbeat_interval is None
