"""robust's bounded name resolution (lab.sockets.robust.resolve) against stub resolvers: a blocking
one is cut off at the deadline, a failing one is its gaierror, a working one is its answer, and an
address literal never reaches the resolver. No network, no real DNS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.sockets import robust
from lab.sockets.errors import ConnectTimeout, NameUnresolvable
from lab.sockets.robust import RobustConfig, RobustConnection, resolve
from lab.sockets.timeouts import Timeouts

REAL_GETADDRINFO = socket.getaddrinfo
ANSWER = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 7000))]
MARGIN = 0.25   # thread start and scheduling on a busy test machine


class StubResolver:
    """socket.getaddrinfo for names; address literals (AI_NUMERICHOST) still go to the real one."""

    def __init__(self, answer: Callable[[str, Any], Any]) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Any, int, int]] = []
        self.release = threading.Event()

    def __call__(self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                 flags: int = 0) -> Any:
        if flags & socket.AI_NUMERICHOST:
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        self.asked.append((host, port, family, type))
        return self.answer(host, port)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[str, Any], Any]], StubResolver]]:
    made: list[StubResolver] = []

    def install(answer: Callable[[str, Any], Any]) -> StubResolver:
        resolver = StubResolver(answer)
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        made.append(resolver)
        return resolver

    yield install
    for resolver in made:
        resolver.release.set()      # let a blocked lookup thread finish


def blocking(resolver_box: list[StubResolver]) -> Callable[[str, Any], Any]:
    def answer(host: str, port: Any) -> Any:
        resolver_box[0].release.wait(10.0)   # a silent resolver: sleeps far past any deadline here
        return ANSWER
    return answer


def test_a_resolver_that_says_nothing_is_cut_off_at_the_deadline(stub: Any) -> None:
    box: list[StubResolver] = []
    box.append(stub(blocking(box)))
    started = time.monotonic()
    with pytest.raises(socket.timeout) as info:
        resolve("server", 7000, 0.3)
    took = time.monotonic() - started
    assert 0.3 - 0.01 <= took <= 0.3 + MARGIN, took
    assert str(info.value) == "resolving 'server' took longer than 0.3 s"
    assert box[0].asked == [("server", 7000, 0, socket.SOCK_STREAM)]


def test_connect_to_a_silent_resolver_is_name_unresolvable_within_the_connect_deadline(stub: Any) -> None:
    box: list[StubResolver] = []
    box.append(stub(blocking(box)))
    config = RobustConfig(timeouts=Timeouts(connect=0.4))
    started = time.monotonic()
    with pytest.raises(NameUnresolvable) as info:
        RobustConnection.connect("server", 7000, config)
    took = time.monotonic() - started
    assert 0.4 - 0.01 <= took <= 0.4 + MARGIN, took
    err = info.value
    assert (err.reason, err.gai_error, err.errno, err.phase, err.peer) == ("resolver-timeout", None, None, "resolve",
                                                                          "server:7000")
    assert err.message == "the resolver did not answer before the connect deadline (server:7000)"
    assert isinstance(err.__cause__, TimeoutError)


def test_a_failing_resolver_is_its_gaierror_and_connect_says_resolver_error(stub: Any) -> None:
    def fail(host: str, port: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    resolver = stub(fail)
    with pytest.raises(socket.gaierror) as raw:
        resolve("server", 7000, 1.0)
    assert raw.value.errno == socket.EAI_AGAIN
    started = time.monotonic()
    with pytest.raises(NameUnresolvable) as info:
        RobustConnection.connect("server", 7000, RobustConfig(timeouts=Timeouts(connect=3.0)))
    assert time.monotonic() - started < 0.5     # a refusal comes back at once, not at the deadline
    err = info.value
    assert (err.reason, err.gai_error, err.errno, err.phase, err.peer) == ("resolver-error", "EAI_AGAIN",
                                                                          socket.EAI_AGAIN, "resolve", "server:7000")
    assert err.message == ("the resolver could not resolve the name (server:7000): EAI_AGAIN: "
                           "Temporary failure in name resolution")
    assert isinstance(err.__cause__, socket.gaierror)
    assert len(resolver.asked) == 2


def test_a_resolver_with_no_address_is_eai_noname(stub: Any) -> None:
    stub(lambda host, port: [])
    with pytest.raises(socket.gaierror) as info:
        resolve("server", 7000, 1.0)
    assert (info.value.errno, info.value.strerror) == (socket.EAI_NONAME, "no address for 'server'")


def test_a_working_resolver_returns_its_answer(stub: Any) -> None:
    resolver = stub(lambda host, port: ANSWER)
    assert resolve("server", 7000, 1.0) == ANSWER
    assert resolve("server", 7000, None) == ANSWER          # no deadline: waits as long as it takes
    assert resolver.asked == [("server", 7000, 0, socket.SOCK_STREAM)] * 2


def test_an_answer_just_inside_the_deadline_is_taken(stub: Any) -> None:
    def slow(host: str, port: Any) -> Any:
        time.sleep(0.1)
        return ANSWER
    stub(slow)
    assert resolve("server", 7000, 1.0) == ANSWER


@pytest.mark.parametrize(("host", "family", "sockaddr"), [
    ("127.0.0.1", socket.AF_INET, ("127.0.0.1", 7000)),
    ("192.0.2.7", socket.AF_INET, ("192.0.2.7", 7000)),
    ("::1", socket.AF_INET6, ("::1", 7000, 0, 0)),
])
def test_an_address_literal_skips_the_resolver(stub: Any, host: str, family: int, sockaddr: tuple[Any, ...]) -> None:
    def never(host: str, port: Any) -> Any:
        raise AssertionError("the resolver was asked about an address literal")

    resolver = stub(never)
    threads = threading.active_count()
    found = resolve(host, 7000, 0.0)        # even a spent deadline: nothing to wait for
    assert [(f, t, a) for f, t, _, _, a in found] == [(family, socket.SOCK_STREAM, sockaddr)]
    assert resolver.asked == [] and threading.active_count() == threads


def test_a_name_the_idna_codec_refuses_is_eai_noname_not_a_unicode_error(stub: Any) -> None:
    # A label over 63 characters: socket.getaddrinfo raises UnicodeError (a ValueError, not an OSError),
    # which used to escape RobustConnection.connect untranslated.
    resolver = stub(lambda host, port: ANSWER)
    name = "a" * 64 + ".example"
    with pytest.raises(socket.gaierror) as raw:
        resolve(name, 7000, 1.0)
    assert raw.value.errno == socket.EAI_NONAME and isinstance(raw.value.__cause__, UnicodeError)
    with pytest.raises(NameUnresolvable) as info:
        RobustConnection.connect(name, 7000)
    assert (info.value.reason, info.value.gai_error) == ("resolver-error", "EAI_NONAME")
    assert resolver.asked == []


def test_connect_spends_one_deadline_on_the_name_and_the_syns(stub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the lookup took is gone from what the connect gets: one deadline for both.
    def slow(host: str, port: Any) -> Any:
        time.sleep(0.3)
        return ANSWER
    stub(slow)
    given: list[float | None] = []

    def connect_first(addresses: Any, deadline: float | None, source: Any) -> Any:
        given.append(None if deadline is None else deadline - time.monotonic())
        raise socket.timeout("connect deadline passed")

    monkeypatch.setattr(robust, "_connect_first", connect_first)
    with pytest.raises(ConnectTimeout):
        RobustConnection.connect("server", 7000, RobustConfig(timeouts=Timeouts(connect=1.0)))
    assert len(given) == 1 and given[0] is not None and 0.5 <= given[0] <= 0.7 + 0.01, given
