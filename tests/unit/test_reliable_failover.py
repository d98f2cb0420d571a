"""ReliableSender's failover: after a failure the next attempt goes round the ring of addresses.

The servers here are fakes that share one delivery record, as the real ones
must for failover to keep exactly-once: HELLO on any of them says the same last
delivered seq. Each address plays a script, one entry per connection made to
it: ``REFUSED`` (ConnectRefused), ``SILENT`` (ConnectTimeout after the connect
timeout passes on the fake clock: a host that vanished), or an int n (accept,
deliver n messages, then the connection is dead: unread ECHOs are lost and the
next call raises PeerReset), or None (accept and never fail).
"""

from __future__ import annotations

import random

import pytest

from lab.sockets import framing
from lab.sockets.backoff import Backoff
from lab.sockets.errors import ConnectRefused, ConnectTimeout, PeerReset
from lab.sockets.framing import Frame, FrameType
from lab.sockets.reliable import ReliableSender

REFUSED, SILENT = "refused", "silent"
P, F1, F2 = ("primary", 7000), ("fallback-1", 7001), ("fallback-2", 7002)
CONNECT_TIMEOUT = 3.0


class FakeConn:
    def __init__(self, servers: "Servers", address: tuple[str, int], deliver: int | None) -> None:
        self.servers, self.address, self.left = servers, address, deliver
        self.peer = "%s:%d" % address
        self.echoes: list[tuple[int, bytes]] = []

    def _check_alive(self, phase: str) -> None:
        if self.left == 0:
            raise PeerReset("connection reset by peer", phase=phase, peer=self.peer)

    def hello(self, session_id: bytes) -> int:
        return max(self.servers.delivered, default=0)

    def send_message(self, body: bytes, *, seq: int) -> None:
        self.servers.sends.append((self.address, seq))
        self._check_alive("write")
        assert seq not in self.servers.delivered, f"seq {seq} delivered twice"
        self.servers.delivered[seq] = body
        self.echoes.append((seq, body))
        if self.left is not None:
            self.left -= 1

    def recv_frame(self) -> Frame:
        self._check_alive("read")
        assert self.echoes, "recv_frame with no ECHO to come: a real connection would wait for ever"
        seq, body = self.echoes.pop(0)
        return Frame(FrameType.ECHO, framing.SEQ.pack(seq) + body)

    def close(self) -> None:
        pass


class Servers:
    """The ``connect`` the sender is given, and the fake clock it shares with ``sleep``."""

    def __init__(self, scripts: dict[tuple[str, int], list[object]]) -> None:
        self.scripts = {address: list(script) for address, script in scripts.items()}
        self.attempts: list[tuple[str, int]] = []
        self.sends: list[tuple[tuple[str, int], int]] = []   # every send_message, failed ones too
        self.delivered: dict[int, bytes] = {}                 # the record the servers share
        self.now = 0.0
        self.sleeps: list[float] = []

    def connect(self, host: str, port: int, config: object) -> FakeConn:
        address = (host, port)
        self.attempts.append(address)
        step = self.scripts[address].pop(0)
        if step == REFUSED:
            raise ConnectRefused("connection refused", phase="connect", peer=f"{host}:{port}")
        if step == SILENT:
            self.now += CONNECT_TIMEOUT
            raise ConnectTimeout("no answer to SYN", phase="connect", peer=f"{host}:{port}")
        assert step is None or isinstance(step, int)
        return FakeConn(self, address, step)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sender_for(servers: Servers, *, fallbacks=(), window: int = 4,
               backoff: Backoff = Backoff(base=0.05, cap=1.0, jitter="none", deadline=30.0)):
    events: list[tuple[str, dict[str, object]]] = []
    sender = ReliableSender(*P, backoff=backoff, window=window, fallbacks=fallbacks,
                            on_event=lambda name, facts: events.append((name, facts)),
                            clock=servers.clock, sleep=servers.sleep, rng=random.Random(0),
                            connect=servers.connect)
    return sender, events


def send_all(sender: ReliableSender, count: int) -> list[bytes]:
    bodies = [b"m%d" % i for i in range(1, count + 1)]
    for body in bodies:
        sender.send(body)
    sender.flush()
    return bodies


def facts_of(events, name: str, *keys: str) -> list[tuple[object, ...]]:
    return [tuple(facts[k] for k in keys) for n, facts in events if n == name]


def test_a_primary_dying_mid_stream_fails_over_and_its_lost_echoes_are_covered_by_hello():
    # window 2: seq 1's ECHO is read on the primary; it dies with 2 and 3 delivered, their ECHOs lost.
    servers = Servers({P: [3], F1: [None]})
    sender, events = sender_for(servers, fallbacks=[F1], window=2)
    bodies = send_all(sender, 6)

    assert servers.attempts == [P, F1]
    assert servers.sends == [(P, 1), (P, 2), (P, 3), (F1, 4), (F1, 5), (F1, 6)]   # 2 and 3 not resent
    assert servers.delivered == dict(enumerate(bodies, start=1))
    assert facts_of(events, "acked", "seq", "via") == [
        (1, "echo"), (2, "hello"), (3, "hello"), (4, "echo"), (5, "echo"), (6, "echo")]
    assert facts_of(events, "connected", "attempt", "host", "port", "last_delivered", "already_delivered") == [
        (1, "primary", 7000, 0, 0), (1, "fallback-1", 7001, 3, 2)]
    assert facts_of(events, "reconnecting", "attempt", "to_host", "to_port", "error") == [
        (1, "fallback-1", 7001, "PeerReset")]
    assert "resent" not in [name for name, _ in events]
    assert (sender.acked, sender.unacked, sender.reconnects, sender.resent) == (6, 0, 1, 0)
    assert sender.address == F1 and (sender.host, sender.port) == P
    assert sender.addresses == (P, F1)


def test_each_failed_attempt_moves_on_round_the_ring_back_to_the_primary():
    servers = Servers({P: [2, None], F1: [REFUSED], F2: [REFUSED]})
    sender, events = sender_for(servers, fallbacks=(F1, F2))
    bodies = send_all(sender, 5)

    assert servers.attempts == [P, F1, F2, P]
    # seq 3 met the dead connection and was never delivered: the HELLO says 2, so 3 alone is resent.
    assert servers.sends == [(P, 1), (P, 2), (P, 3), (P, 3), (P, 4), (P, 5)]
    assert servers.delivered == dict(enumerate(bodies, start=1))
    assert sorted(facts_of(events, "acked", "seq")) == [(seq,) for seq in range(1, 6)]
    assert facts_of(events, "acked", "seq", "via")[:2] == [(1, "hello"), (2, "hello")]
    assert facts_of(events, "reconnecting", "attempt", "to_host", "to_port", "error", "delay") == [
        (1, "fallback-1", 7001, "PeerReset", 0.05),
        (2, "fallback-2", 7002, "ConnectRefused", 0.1),
        (3, "primary", 7000, "ConnectRefused", 0.2)]
    assert facts_of(events, "connected", "attempt", "host", "port", "already_delivered", "pending") == [
        (1, "primary", 7000, 0, 1), (3, "primary", 7000, 2, 1)]
    assert facts_of(events, "resent", "count", "first", "last") == [(1, 3, 3)]
    assert servers.sleeps == [0.05, 0.1, 0.2]   # one backoff run across the ring, as with one address
    assert (sender.acked, sender.reconnects, sender.resent) == (5, 3, 1)


def test_the_first_connect_failing_tries_the_fallback_next():
    servers = Servers({P: [REFUSED], F1: [None]})
    sender, events = sender_for(servers, fallbacks=[F1])
    send_all(sender, 2)
    assert servers.attempts == [P, F1]
    assert facts_of(events, "reconnecting", "to_host", "to_port", "error") == [("fallback-1", 7001, "ConnectRefused")]
    assert sender.address == F1


def test_one_backoff_deadline_bounds_the_whole_reconnect_round_the_ring_and_the_last_error_is_raised():
    # Deadline 6 s: sleep 1, F1 refuses at 1 s; sleep 1, the vanished primary eats its 3 s connect
    # timeout from 2 s; sleep 1, F1 refuses at 6 s, the deadline: no more delays, its error is raised.
    servers = Servers({P: [1, SILENT], F1: [REFUSED, REFUSED]})
    sender, events = sender_for(servers, fallbacks=[F1],
                                backoff=Backoff(base=1.0, cap=1.0, jitter="none", deadline=6.0))
    sender.send(b"m1")
    with pytest.raises(ConnectRefused) as raised:
        sender.send(b"m2")
    assert raised.value.peer == "fallback-1:7001"
    assert servers.attempts == [P, F1, P, F1]
    assert servers.sleeps == [1.0, 1.0, 1.0] and servers.now == 6.0
    assert facts_of(events, "reconnecting", "attempt", "to_host", "error") == [
        (1, "fallback-1", "PeerReset"), (2, "primary", "ConnectRefused"), (3, "fallback-1", "ConnectTimeout")]
    assert sender.address == P   # giving up moved on too: a later send starts past F1, which failed last
    assert servers.delivered == {1: b"m1"} and (sender.acked, sender.unacked) == (0, 2)   # no ECHO or HELLO said so


def test_without_fallbacks_every_attempt_goes_back_to_the_one_address():
    servers = Servers({P: [2, REFUSED, None]})
    sender, events = sender_for(servers)
    bodies = send_all(sender, 4)
    assert servers.attempts == [P, P, P]
    assert servers.sends == [(P, 1), (P, 2), (P, 3), (P, 3), (P, 4)]
    assert servers.delivered == dict(enumerate(bodies, start=1))
    assert sender.addresses == (P,) and sender.address == P
    assert facts_of(events, "reconnecting", "attempt", "to_host", "to_port", "error") == [
        (1, "primary", 7000, "PeerReset"), (2, "primary", 7000, "ConnectRefused")]
    assert facts_of(events, "connected", "host", "port") == [("primary", 7000)] * 2


@pytest.mark.parametrize(("fallbacks", "wrong"), [
    ([("b", 7001), ("c",)], "fallbacks[1] is ('c',): not a (host, port) pair"),
    (["b:7001"], "fallbacks[0] is 'b:7001': not a (host, port) pair"),
    (("b", 7001), "fallbacks[0] is 'b': not a (host, port) pair"),   # a bare pair, not a sequence of them
    ([["b", 7001]], "fallbacks[0] is ['b', 7001]: not a (host, port) pair"),
    ([(b"b", 7001)], "fallbacks[0] is (b'b', 7001): host is bytes, not str"),
    ([("b", "7001")], "fallbacks[0] is ('b', '7001'): port is str, not int"),
    ([("b", True)], "fallbacks[0] is ('b', True): port is bool, not int"),
    ([("b", 0)], "fallbacks[0] is ('b', 0): port out of range"),
    ([("b", 65536)], "fallbacks[0] is ('b', 65536): port out of range"),
])
def test_bad_fallbacks_say_what_was_wrong_and_what_is_accepted(fallbacks, wrong):
    with pytest.raises(ValueError) as raised:
        ReliableSender(*P, fallbacks=fallbacks)
    assert str(raised.value) == ("'fallbacks' must be a sequence of (host, port) pairs, host a str and port "
                                 f"an int 1..65535; {wrong}")


def test_ports_at_the_ends_of_the_range_are_accepted():
    sender = ReliableSender(*P, fallbacks=[("b", 1), ("c", 65535)])
    assert sender.addresses == (P, ("b", 1), ("c", 65535))
    assert sender.address == P
