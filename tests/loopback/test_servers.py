"""One contract suite for both lab servers, on 127.0.0.1: echo, exactly-once across a restart,
every failure behaviour, protocol errors isolated to one connection, the control port, and a
crowd of concurrent clients of which some die mid-message."""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from lab.sockets.framing import HEADER, Decoder, Frame, FrameType, encode_data, encode_hello_request, encode_ping, NEED_DATA
from lab.server import body_checksum
from lab.server.log import FILENAME
from lab.testing import RunningServer, running_server

HOST = "127.0.0.1"
TIMEOUT = 5.0


@pytest.fixture(params=["threaded", "selectors", "forking"])
def impl(request: pytest.FixtureRequest) -> str:
    return request.param


class Client:
    """A small, strict test client: blocking with a test-side timeout, one Decoder."""

    def __init__(self, port: int, session: bytes | None = None, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.dec = Decoder()
        self.session = session
        self.last_seq: int | None = None
        if session is not None:
            self.sock.sendall(encode_hello_request(session))
            hello = self.frame()
            assert hello.type is FrameType.HELLO
            self.last_seq = hello.seq

    def frame(self) -> Frame:
        while True:
            event = self.dec.next_event()
            if isinstance(event, Frame):
                return event
            assert event is NEED_DATA, f"stream ended: {event!r}"
            self.dec.receive_data(self.sock.recv(65536))

    def request(self, seq: int, body: bytes) -> Frame:
        self.sock.sendall(encode_data(seq, body))
        return self.frame()

    def read_eof(self) -> bytes:
        """Everything until EOF (raises on RST)."""
        out = b""
        while chunk := self.sock.recv(65536):
            out += chunk
        return out

    def abort(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def wait_for(predicate, timeout: float = TIMEOUT, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- the protocol ------------------------------------------------------------------------------------

def test_echo_ping_and_hello(impl: str) -> None:
    with running_server(impl) as srv:
        c = Client(srv.port, session=os.urandom(16))
        assert c.last_seq == 0
        for seq in range(1, 6):
            body = os.urandom(seq * 100)
            assert c.request(seq, body) == Frame(FrameType.ECHO, struct.pack("!Q", seq) + body)
        c.sock.sendall(encode_ping(99))
        assert c.frame() == Frame(FrameType.PONG, struct.pack("!Q", 99))
        c.close()


def test_pipelined_messages_all_come_back_in_order(impl: str) -> None:
    with running_server(impl) as srv:
        c = Client(srv.port, session=os.urandom(16))
        bodies = [os.urandom(random.randrange(0, 5000)) for _ in range(50)]
        c.sock.sendall(b"".join(encode_data(i + 1, b) for i, b in enumerate(bodies)))
        got = [c.frame() for _ in bodies]
        assert [(f.seq, f.body) for f in got] == [(i + 1, b) for i, b in enumerate(bodies)]
        c.close()
        assert srv.stats()["checksum"] == body_checksum(bodies)


def test_a_large_message_is_echoed_whole(impl: str) -> None:
    with running_server(impl) as srv:
        c = Client(srv.port)
        body = os.urandom(4 << 20)
        assert c.request(1, body).body == body
        c.close()


def test_duplicates_in_a_session_are_acked_but_not_delivered_again(impl: str) -> None:
    with running_server(impl) as srv:
        sid = os.urandom(16)
        c = Client(srv.port, session=sid)
        assert c.request(1, b"a").seq == 1
        assert c.request(2, b"b").seq == 2
        assert c.request(2, b"b").body == b"b"   # acknowledged again...
        assert c.request(1, b"a").seq == 1
        c.close()
        stats = srv.stats()
        assert stats["sessions"][sid.hex()] == {"count": 2, "last_seq": 2,
                                                "checksum": body_checksum([b"a", b"b"])}
        assert (stats["delivered"], stats["duplicates"]) == (2, 2)  # ...but delivered once


def test_anonymous_connections_get_no_dedup(impl: str) -> None:
    with running_server(impl) as srv:
        c = Client(srv.port)
        c.request(1, b"x")
        c.request(1, b"x")
        c.close()
        stats = srv.stats()
        assert (stats["delivered"], stats["duplicates"]) == (2, 0)
        assert stats["sessions"]["anonymous"]["count"] == 2


def test_exactly_once_across_a_restart_with_the_state_dir(impl: str, tmp_path: Path) -> None:
    sid = os.urandom(16)
    bodies = {seq: f"message {seq}".encode() for seq in range(1, 11)}
    with running_server(impl, state_dir=tmp_path) as srv:
        c = Client(srv.port, session=sid)
        for seq in range(1, 7):
            c.request(seq, bodies[seq])
        c.close()
        port = srv.port
        srv.restart()
        assert srv.port == port and srv.starts == 2
        c = Client(srv.port, session=sid)
        assert c.last_seq == 6  # the new process knows what the old one delivered
        for seq in range(4, 11):  # the client resends from before the restart point
            assert c.request(seq, bodies[seq]).body == bodies[seq]
        c.close()
        stats = srv.stats()
    assert stats["sessions"][sid.hex()] == {"count": 10, "last_seq": 10,
                                            "checksum": body_checksum(list(bodies.values()))}
    assert stats["duplicates"] == 3
    lines = [json.loads(line) for line in (tmp_path / FILENAME).read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, 11))
    assert all(r["crc"] == zlib.crc32(bodies[r["seq"]]) and r["session"] == sid.hex() for r in lines)


def test_a_torn_last_log_line_is_ignored_on_restart(impl: str, tmp_path: Path) -> None:
    sid = os.urandom(16)
    with running_server(impl, state_dir=tmp_path) as srv:
        c = Client(srv.port, session=sid)
        c.request(1, b"one")
        c.close()
        srv.stop()
        with open(tmp_path / FILENAME, "a") as f:
            f.write('{"session": "' + sid.hex() + '", "se')  # died mid-write, never acknowledged
        srv.start()
        c = Client(srv.port, session=sid)
        assert c.last_seq == 1
        c.request(2, b"two")
        c.close()
        assert srv.stats()["sessions"][sid.hex()]["count"] == 2


# -- behaviours ------------------------------------------------------------------------------------

@pytest.mark.parametrize("after", [0, 3])
def test_close_after_n_messages_ends_cleanly_between_messages(impl: str, after: int) -> None:
    with running_server(impl) as srv:
        srv.behave(mode="close", after=after)
        c = Client(srv.port)
        for seq in range(1, after + 1):
            assert c.request(seq, b"m").seq == seq
        if after:
            c.sock.sendall(encode_data(after + 1, b"m"))  # would be the next message
        start = time.monotonic()
        assert c.read_eof() == b""  # FIN, not RST, and not a byte of a further ECHO
        assert time.monotonic() - start < 2
        c.close()
        assert wait_for(lambda: srv.stats()["closed"].get("close") == 1)
        assert srv.stats()["delivered"] == after


def test_abort_after_n_messages_resets(impl: str) -> None:
    with running_server(impl) as srv:
        srv.behave(mode="abort", after=2)
        c = Client(srv.port)
        assert c.request(1, b"a").seq == 1
        assert c.request(2, b"b").seq == 2  # the last one is still acknowledged (ack_last)
        start = time.monotonic()
        with pytest.raises(ConnectionResetError):
            c.read_eof()
        assert time.monotonic() - start < 2
        c.close()
        assert wait_for(lambda: srv.stats()["closed"].get("abort") == 1)


def test_abort_without_ack_delivers_but_never_acknowledges(impl: str) -> None:
    with running_server(impl) as srv:
        sid = os.urandom(16)
        srv.behave(mode="abort", after=1, ack_last=False)
        c = Client(srv.port, session=sid)
        c.sock.sendall(encode_data(1, b"kept"))
        with pytest.raises(ConnectionResetError):
            c.read_eof()
        c.close()
        srv.behave(mode="normal")
        c = Client(srv.port, session=sid)
        assert c.last_seq == 1  # the client learns it was delivered after all
        assert c.request(1, b"kept").body == b"kept"  # a resend is acked, not delivered
        c.close()
        assert srv.stats()["sessions"][sid.hex()]["count"] == 1


def test_stop_reading_applies_backpressure_then_resumes(impl: str) -> None:
    with running_server(impl) as srv:
        c = Client(srv.port, session=os.urandom(16))
        assert c.request(1, b"before").seq == 1
        srv.behave(mode="stop_reading", after=0)
        time.sleep(0.3)  # the threaded server's handler notices within its poll interval
        c.sock.setblocking(False)
        sent, seq, body = 0, 2, b"p" * 65536
        frame = encode_data(seq, body)
        pending = memoryview(b"".join(encode_data(s, body) for s in range(2, 200)))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:  # push until the kernel refuses: the buffers are full
            try:
                sent += c.sock.send(pending[sent:])
            except BlockingIOError:
                time.sleep(0.2)
                try:
                    more = c.sock.send(pending[sent:])
                except BlockingIOError:
                    break
                sent += more
        assert sent < len(pending), "the server kept reading"
        assert srv.stats()["delivered"] == 1
        srv.behave(mode="normal")
        c.sock.settimeout(TIMEOUT)
        echoes: list[Frame] = []
        # Read while writing: the echoes are as big as the messages, and a client that only
        # writes would now be the one that stops reading.
        reader = threading.Thread(target=lambda: echoes.extend(c.frame() for _ in range(2, 200)), daemon=True)
        reader.start()
        c.sock.sendall(pending[sent:])
        reader.join(TIMEOUT * 2)
        assert not reader.is_alive()
        assert [f.seq for f in echoes] == list(range(2, 200)) and len(frame) == len(body) + 13
        assert srv.stats()["delivered"] == 199
        c.close()


def test_no_accept_once_stop_accepting_has_returned(impl: str) -> None:
    # A connection that arrives just before "stop accepting" may be taken or left queued, but
    # once behave() has returned, the accept count stays put: an acceptor thread already past its
    # check must not accept it a moment later (backlog-full counts the accepts while it fills).
    with running_server(impl) as srv:
        assert srv.server is not None
        late = 0
        for trial in range(12):
            c = socket.create_connection((HOST, srv.port), timeout=TIMEOUT)
            time.sleep(trial * 0.0005)   # land at different points of the acceptor's loop
            srv.server.behave(accepting=False)
            frozen = srv.stats()["accepted"]
            time.sleep(0.25)   # more than the poll interval, during which the acceptor runs
            late += srv.stats()["accepted"] - frozen
            srv.server.behave(accepting=True)
            assert wait_for(lambda: srv.stats()["accepted"] == trial + 1)
            c.close()
        assert late == 0


def test_stop_accepting_leaves_clients_in_a_full_backlog(impl: str) -> None:
    with running_server(impl, backlog=1) as srv:
        srv.behave(accepting=False)
        time.sleep(0.3)
        connected: list[socket.socket] = []
        timed_out = 0
        for _ in range(6):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect((HOST, srv.port))
            except TimeoutError:
                timed_out += 1
                s.close()
            else:
                connected.append(s)
        assert srv.stats()["accepted"] == 0
        assert connected, "not even the backlog took a connection"
        assert timed_out >= 1, "a backlog of 1 took six connections"
        srv.behave(accepting=True)
        for i, s in enumerate(connected):  # the queued ones are served once accept resumes
            s.settimeout(TIMEOUT)
            s.sendall(encode_data(i, b"late"))
            dec = Decoder()
            while (f := dec.next_event()) is NEED_DATA:
                dec.receive_data(s.recv(100))
            assert isinstance(f, Frame) and f.body == b"late"
            s.close()
        assert wait_for(lambda: srv.stats()["accepted"] == len(connected))


# -- protocol errors stay with their connection -----------------------------------------------------

@pytest.mark.parametrize("garbage, error", [
    (HEADER.pack(0, 77), "BadFrame"),
    (HEADER.pack(2**31, FrameType.DATA), "FrameTooLarge"),
    (HEADER.pack(8, FrameType.ECHO) + bytes(8), "BadFrame"),   # clients do not send ECHO
    (encode_data(1, b"x") + encode_hello_request(bytes(16)), "BadFrame"),  # HELLO only first
])
def test_a_protocol_error_closes_only_that_connection(impl: str, garbage: bytes, error: str) -> None:
    with running_server(impl) as srv:
        good = Client(srv.port, session=os.urandom(16))
        good.request(1, b"first")
        bad = Client(srv.port)
        bad.sock.sendall(garbage)
        try:
            bad.read_eof()
        except ConnectionResetError:
            pass  # closing with our unread bytes in its buffer makes the kernel send RST: also fine
        assert good.request(2, b"second").body == b"second"
        good.close()
        bad.close()
        # The error is counted before the connection's close is: wait for both.
        assert wait_for(lambda: srv.stats()["errors"].get(error) == 1 and srv.stats()["closed"].get("error") == 1)
        stats = srv.stats()
        assert (stats["errors"].get(error), stats["closed"].get("error")) == (1, 1)


# -- the control port ------------------------------------------------------------------------------

def test_control_port_commands(impl: str) -> None:
    with running_server(impl) as srv:
        assert srv.control({"cmd": "ping"}) == {"ok": True}
        assert srv.control({"cmd": "behave", "mode": "close", "after": 4}) == {
            "ok": True, "behaviour": {"mode": "close", "after": 4, "ack_last": True, "accepting": True,
                                      "nofile": None}}
        assert srv.control({"cmd": "stats"})["stats"]["behaviour"]["mode"] == "close"
        bad = srv.control({"cmd": "behave", "mode": "explode"})
        assert bad["ok"] is False and "mode" in bad["error"]
        assert srv.control({"cmd": "behave", "after": -1})["ok"] is False
        assert srv.control({"cmd": "behave", "colour": "red"})["ok"] is False
        assert srv.control({"cmd": "nope"})["ok"] is False
        assert srv.control({"nocmd": 1})["ok"] is False
        c = Client(srv.port)
        c.request(1, b"x")
        c.close()
        assert srv.control({"cmd": "reset"}) == {"ok": True, "behaviour": {
            "mode": "normal", "after": 0, "ack_last": True, "accepting": True, "nofile": None}}
        stats = srv.control({"cmd": "stats"})["stats"]
        assert stats["accepted"] == 0 and stats["delivered"] == 1  # counters zeroed, deliveries kept
        assert stats["impl"] == impl


def test_control_port_answers_several_requests_per_connection_and_bad_json(impl: str) -> None:
    with running_server(impl) as srv:
        assert srv.control_port is not None
        with socket.create_connection((HOST, srv.control_port), timeout=TIMEOUT) as s:
            s.sendall(b'{"cmd":"ping"}\nnot json\n{"cmd":"stats"}\n')
            buf = b""
            while buf.count(b"\n") < 3:
                buf += s.recv(65536)
        replies = [json.loads(line) for line in buf.splitlines()]
        assert replies[0] == {"ok": True}
        assert replies[1]["ok"] is False and "not JSON" in replies[1]["error"]
        assert replies[2]["ok"] is True and replies[2]["stats"]["accepted"] == 0


def test_stop_returns_promptly_with_idle_and_blocked_connections(impl: str) -> None:
    with running_server(impl) as srv:
        idle = Client(srv.port)
        half = Client(srv.port)
        try:
            half.sock.sendall(encode_data(1, b"x" * 100)[:20])
            # Both must be the server's connections before it stops: one still in the listen queue
            # is reset when the listener closes, which is the kernel's doing, not the server's (a
            # forking server under load can take longer to accept than the behave round trip).
            assert wait_for(lambda: srv.stats()["active"] == 2)
            srv.behave(mode="stop_reading")
            start = time.monotonic()
            srv.stop()
            assert time.monotonic() - start < 1.5
            assert idle.read_eof() == b""
        finally:
            idle.close()
            half.close()


# -- a crowd with casualties ------------------------------------------------------------------------

CLIENTS = 200
MESSAGES = 10


def test_many_concurrent_clients_some_killed_mid_message(impl: str) -> None:
    rng = random.Random(1234)
    fates = ["ok"] * CLIENTS
    for i in rng.sample(range(CLIENTS), 40):
        fates[i] = "rst" if i % 2 else "eof"
    results: dict[int, object] = {}
    start_line = threading.Barrier(CLIENTS + 1, timeout=30)

    def run(i: int, port: int) -> None:
        sid = i.to_bytes(16, "big")
        try:
            c = Client(port, session=sid, timeout=20)
            start_line.wait()
            for seq in range(1, MESSAGES + 1):
                body = f"client {i} message {seq}".encode() * (seq + i % 7)
                if fates[i] != "ok" and seq == MESSAGES // 2:
                    c.sock.sendall(encode_data(seq, body)[:9])  # part of a frame, then die
                    if fates[i] == "rst":
                        c.abort()
                    else:
                        c.sock.shutdown(socket.SHUT_WR)
                        c.read_eof()
                        c.close()
                    results[i] = "killed"
                    return
                echo = c.request(seq, body)
                assert (echo.seq, echo.body) == (seq, body)
            c.close()
            results[i] = "ok"
        except BaseException as exc:
            results[i] = exc

    with running_server(impl) as srv:
        threads = [threading.Thread(target=run, args=(i, srv.port), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        start_line.wait()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        assert not any(t.is_alive() for t in threads), "some clients hung"
        assert wait_for(lambda: srv.stats()["active"] == 0, timeout=10)
        stats = srv.stats()

    assert {i: r for i, r in results.items() if r not in ("ok", "killed")} == {}
    assert [results[i] for i in range(CLIENTS)] == ["ok" if f == "ok" else "killed" for f in fates]
    for i, fate in enumerate(fates):
        expected = MESSAGES if fate == "ok" else MESSAGES // 2 - 1
        bodies = [f"client {i} message {s}".encode() * (s + i % 7) for s in range(1, expected + 1)]
        assert stats["sessions"][i.to_bytes(16, "big").hex()] == {
            "count": expected, "last_seq": expected, "checksum": body_checksum(bodies)}, f"client {i} ({fate})"
    assert stats["accepted"] == CLIENTS
    assert stats["errors"] == {"IncompleteMessage": fates.count("eof"), "PeerReset": fates.count("rst")}
    assert stats["duplicates"] == 0


def test_nofile_behaviour_sets_and_restores_the_process_limit(impl: str) -> None:
    import resource

    start = resource.getrlimit(resource.RLIMIT_NOFILE)
    with running_server(impl) as srv:
        try:
            reply = srv.control({"cmd": "behave", "nofile": 900})
            assert reply["ok"] is True and reply["behaviour"]["nofile"] == 900
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (900, start[1])
            for bad in (8, True, "32", 10**7):
                refused = srv.control({"cmd": "behave", "nofile": bad})
                assert refused["ok"] is False and "nofile" in refused["error"]
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (900, start[1])   # a refusal changes nothing
            assert srv.control({"cmd": "reset"})["behaviour"]["nofile"] is None
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == start
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, start)
