"""What the server keeps for the grading judge, without sockets: the delivery log's digests (on disk,
reloaded with and without them, bounded), the rejections a connection core reports, and the exact
replies and refusals of the control commands ``delivered`` and ``rejections``."""

from __future__ import annotations

import json
import struct
import types
from pathlib import Path
from typing import Any

import pytest

from lab.server import control
from lab.server.behaviour import Behaviour
from lab.server.control import MAX_DIGESTS_PER_REQUEST, handle_command
from lab.server.log import FILENAME, DeliveryLog, body_digest, is_digest
from lab.server.protocol import HEAD_SIZE, ServerConnection
from lab.server.stats import REJECTION_LOG_SIZE, Rejections
from lab.sockets.framing import encode_data

HELLO_DIGEST = "a7b6eda801e5347d"   # blake2b(b"hello", digest_size=8)
HELLO_CRC = 907060870               # zlib.crc32(b"hello")
UNKNOWN = "0000000000000000"
SESSION = bytes(range(16))


# Digests in the delivery log -----------------------------------------------------------------------------
def test_body_digest_is_blake2b_of_the_body_in_16_lowercase_hex_characters() -> None:
    assert body_digest(b"hello") == HELLO_DIGEST
    assert (is_digest(HELLO_DIGEST), is_digest(HELLO_DIGEST.upper()), is_digest(HELLO_DIGEST[:15]),
            is_digest(HELLO_DIGEST + "0"), is_digest(16), is_digest("g" * 16)) == (True, False, False, False, False,
                                                                                   False)


def test_every_delivery_is_counted_by_digest_and_refused_duplicates_apart() -> None:
    log = DeliveryLog()
    assert log.deliver(None, 1, b"hello") is True
    assert log.deliver(None, 1, b"hello") is True          # anonymous: no dedup, a second delivery
    assert log.deliver(SESSION, 1, b"other") is True
    assert log.deliver(SESSION, 1, b"other") is False      # the session's dedup refuses it
    other = body_digest(b"other")
    assert log.delivered_counts([HELLO_DIGEST, other, UNKNOWN]) == {HELLO_DIGEST: 2, other: 1, UNKNOWN: 0}
    assert log.refused_counts([HELLO_DIGEST, other, UNKNOWN]) == {HELLO_DIGEST: 0, other: 1, UNKNOWN: 0}
    assert (log.snapshot()["delivered"], log.snapshot()["duplicates"], log.snapshot()["digests"]) == (3, 1, 2)


def test_the_digest_is_written_in_each_line_and_counted_again_after_a_restart(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path)
    log.deliver(SESSION, 7, b"hello")
    log.deliver(None, 1, b"hello")
    log.close()
    lines = (tmp_path / FILENAME).read_text(encoding="ascii").splitlines()
    assert lines == [
        f'{{"session":"{SESSION.hex()}","seq":7,"len":5,"crc":{HELLO_CRC},"d":"{HELLO_DIGEST}"}}',
        f'{{"session":null,"seq":1,"len":5,"crc":{HELLO_CRC},"d":"{HELLO_DIGEST}"}}',
    ]
    again = DeliveryLog(tmp_path)
    try:
        assert again.delivered_counts([HELLO_DIGEST]) == {HELLO_DIGEST: 2}
        assert again.last_seq(SESSION) == 7
    finally:
        again.close()


def test_reload_accepts_lines_without_a_digest_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    old = {"session": None, "seq": 1, "len": 3, "crc": 5}                         # written before digests
    new = {"session": None, "seq": 2, "len": 5, "crc": HELLO_CRC, "d": HELLO_DIGEST}
    bad = {"session": None, "seq": 3, "len": 5, "crc": 9, "d": "NOT-A-DIGEST"}    # counted, digest unknown
    (tmp_path / FILENAME).write_text(
        "\n".join(json.dumps(r) for r in (old, new, bad)) + '\n{"session": null, "seq": 4, "le', encoding="ascii")
    log = DeliveryLog(tmp_path)
    try:
        assert (log.delivered, log.checksum) == (3, (5 + HELLO_CRC + 9) % 2**32)
        assert log.delivered_counts([HELLO_DIGEST, UNKNOWN]) == {HELLO_DIGEST: 1, UNKNOWN: 0}
        assert log.snapshot()["digests"] == 1
    finally:
        log.close()


def test_beyond_the_bound_the_digest_first_seen_longest_ago_is_forgotten_first() -> None:
    log = DeliveryLog(max_digests=3)
    bodies = [b"a", b"b", b"c"]
    for seq, body in enumerate(bodies, 1):
        log.deliver(None, seq, body)
    log.deliver(None, 4, b"a")     # seen again: still the oldest by first sight
    log.deliver(None, 5, b"d")     # the fourth distinct digest pushes out the first
    digests = [body_digest(b) for b in (b"a", b"b", b"c", b"d")]
    assert log.delivered_counts(digests) == dict(zip(digests, [0, 1, 1, 1]))
    log.deliver(SESSION, 1, b"e")
    log.deliver(SESSION, 1, b"e")  # refused; the refused and delivered tables share the bound
    assert log.refused_counts([body_digest(b"e")]) == {body_digest(b"e"): 1}
    assert log.delivered_counts(digests) == dict(zip(digests, [0, 0, 1, 1]))
    assert (log.snapshot()["digests"], log.delivered) == (3, 6)  # deliveries are counted regardless


def test_the_bound_is_two_million_digests_by_default() -> None:
    assert DeliveryLog().max_digests == 2_000_000
    with pytest.raises(ValueError, match="^max_digests must be at least 1; got 0$"):
        DeliveryLog(max_digests=0)


# Rejections ------------------------------------------------------------------------------------------------
def core(peer: str = "10.0.0.9:4242") -> ServerConnection:
    return ServerConnection(3, DeliveryLog(), lambda: Behaviour(), peer=peer)


def test_a_frame_behind_an_extra_length_prefix_is_rejected_with_its_first_bytes() -> None:
    frame = encode_data(1, b"x" * 19)
    sent = struct.pack("!I", len(frame)) + frame
    c = core()
    c.receive_data(sent)
    c.process()
    assert c.closing == "error"
    assert c.rejection("closed the connection") == {
        "peer": "10.0.0.9:4242", "head": sent.hex(), "received": 36, "kind": "BadFrame",
        "error": "unknown frame type 0 in header 0000002000; accepted: HELLO=1, DATA=2, ECHO=3, PING=4, PONG=5",
        "answer": "closed the connection"}


def test_only_the_first_64_bytes_are_kept_however_they_arrive() -> None:
    good = encode_data(1, b"y" * 60)   # 73 bytes
    c = core()
    for i in range(0, len(good), 10):
        c.receive_data(good[i:i + 10])
    c.receive_data(b"\x00\x00\x00\x08\x09" + bytes(8))
    c.process()
    rejection = c.rejection("closed the connection")
    assert rejection is not None
    assert (HEAD_SIZE, rejection["head"], rejection["received"], rejection["kind"]) == (
        64, good[:64].hex(), 86, "BadFrame")


def test_eof_in_the_middle_of_a_frame_is_a_rejection_and_a_clean_end_is_none() -> None:
    cut = core()
    cut.receive_data(encode_data(1, b"z" * 10)[:9])
    cut.receive_data(b"")
    cut.process()
    assert cut.rejection("closed the connection") == {
        "peer": "10.0.0.9:4242", "head": encode_data(1, b"z" * 10)[:9].hex(), "received": 9,
        "kind": "IncompleteMessage", "error": "stream ended after 9 of 23 bytes of a frame",
        "answer": "closed the connection"}
    clean = core()
    clean.receive_data(encode_data(1, b"z"))
    clean.receive_data(b"")
    clean.process()
    assert (clean.closing, clean.rejection("closed the connection")) == ("eof", None)


def test_the_rejection_log_keeps_the_last_64_and_selects_by_time() -> None:
    log = Rejections()
    for i in range(REJECTION_LOG_SIZE + 6):
        log.add({"conn": i}, at=1000.0 + i)
    kept = log.since()
    assert (len(kept), kept[0], kept[-1]) == (64, {"at": 1006.0, "conn": 6}, {"at": 1069.0, "conn": 69})
    assert log.since(1068.0) == [{"at": 1068.0, "conn": 68}, {"at": 1069.0, "conn": 69}]
    assert log.since(2000) == []


# The control commands -----------------------------------------------------------------------------------
def fake_server() -> Any:
    """What handle_command needs of a server for these two commands: its log and its rejections."""
    server = types.SimpleNamespace(log=DeliveryLog(), rejections=Rejections())
    server.log.deliver(None, 1, b"hello")
    server.log.deliver(None, 2, b"hello")
    server.rejections.add({"conn": 1, "error": "old"}, at=100.0)
    server.rejections.add({"conn": 2, "error": "new"}, at=200.5)
    return server


ACCEPTED = ('"digests" is a list of at most 4096 digests, each exactly 16 lowercase hex characters '
            '(blake2b, digest_size=8, of a DATA body)')


def test_delivered_answers_a_count_for_every_digest_asked() -> None:
    assert handle_command(fake_server(), {"cmd": "delivered", "digests": [HELLO_DIGEST, UNKNOWN]}) == {
        "ok": True, "counts": {HELLO_DIGEST: 2, UNKNOWN: 0}, "refused": {HELLO_DIGEST: 0, UNKNOWN: 0}}
    assert handle_command(fake_server(), {"cmd": "delivered", "digests": []}) == {"ok": True, "counts": {},
                                                                                  "refused": {}}
    full = {"cmd": "delivered", "digests": [f"{i:016x}" for i in range(MAX_DIGESTS_PER_REQUEST)]}
    assert len(handle_command(fake_server(), full)["counts"]) == 4096
    assert len(json.dumps(full)) < control.MAX_LINE   # a full request fits on one control line


@pytest.mark.parametrize(("request_", "error"), [
    ({"cmd": "delivered"}, f"{ACCEPTED}; got NoneType"),
    ({"cmd": "delivered", "digests": HELLO_DIGEST}, f"{ACCEPTED}; got str"),
    ({"cmd": "delivered", "digests": [UNKNOWN] * 4097}, f"{ACCEPTED}; got 4097: split them over several requests"),
    ({"cmd": "delivered", "digests": [UNKNOWN, HELLO_DIGEST.upper()]}, f"{ACCEPTED}; digests[1] is 'A7B6EDA801E5347D'"),
    ({"cmd": "delivered", "digests": ["abc"]}, f"{ACCEPTED}; digests[0] is 'abc'"),
    ({"cmd": "delivered", "digests": [12]}, f"{ACCEPTED}; digests[0] is 12"),
    ({"cmd": "delivered", "digests": ["f" * 100]}, f"{ACCEPTED}; digests[0] is '{'f' * 36}..."),
    ({"cmd": "delivered", "digests": [], "since": 1}, "unknown field(s) 'since' for 'delivered'; it takes 'digests'"),
    ({"cmd": "rejections", "since": "yesterday"},
     "\"since\" is optional, a unix time in seconds (a number); got 'yesterday'"),
    ({"cmd": "rejections", "since": True}, '"since" is optional, a unix time in seconds (a number); got True'),
    ({"cmd": "rejections", "since": float("nan")}, '"since" is optional, a unix time in seconds (a number); got nan'),
    ({"cmd": "rejections", "digests": []}, "unknown field(s) 'digests' for 'rejections'; it takes 'since'"),
])
def test_bad_requests_are_refused_saying_what_is_accepted(request_: dict[str, Any], error: str) -> None:
    assert handle_command(fake_server(), request_) == {"ok": False, "error": error}


def test_rejections_are_listed_oldest_first_and_since_selects_by_time() -> None:
    assert handle_command(fake_server(), {"cmd": "rejections"}) == {"ok": True, "rejections": [
        {"at": 100.0, "conn": 1, "error": "old"}, {"at": 200.5, "conn": 2, "error": "new"}]}
    assert handle_command(fake_server(), {"cmd": "rejections", "since": 200}) == {"ok": True, "rejections": [
        {"at": 200.5, "conn": 2, "error": "new"}]}
    assert handle_command(fake_server(), {"cmd": "rejections", "since": None})["rejections"][0]["conn"] == 1


def test_unknown_commands_list_the_new_ones() -> None:
    assert handle_command(fake_server(), {"cmd": "nope"}) == {
        "ok": False, "error": "unknown command 'nope'; accepted: ping, stats, behave, reset, delivered, rejections"}
