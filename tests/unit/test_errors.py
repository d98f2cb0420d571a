"""The one OSError → lab error translation: every errno set, our own timeouts per phase, chaining, as_dict."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from lab.sockets import errnos
from lab.sockets.errors import (RESOLVE_REASONS, AddressUnavailable, BrokenPipe, ConnectError, ConnectionLost,
                               ConnectRefused, ConnectTimeout, IncompleteMessage, LabError, NameUnresolvable,
                               NoRoute, PeerReset, PeerUnresponsive, SendStalled, translate, translating)

PHASES = ("connect", "read", "write", "close")


def oserror(code: int) -> OSError:
    # OSError(errno, strerror) picks the matching subclass (ConnectionResetError, ...), as the socket module does.
    return OSError(code, os.strerror(code))


def _each(codes: frozenset[int]) -> list[int]:
    assert codes, "an errno set is empty on this platform"
    return sorted(codes)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", _each(errnos.REFUSED))
def test_refused_is_connect_refused(code: int, phase: str) -> None:
    assert type(translate(oserror(code), phase)) is ConnectRefused  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", _each(errnos.UNREACHABLE))
def test_unreachable_is_no_route(code: int, phase: str) -> None:
    assert type(translate(oserror(code), phase)) is NoRoute  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", _each(errnos.RESET))
def test_reset_is_peer_reset(code: int, phase: str) -> None:
    assert type(translate(oserror(code), phase)) is PeerReset  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", _each(errnos.BROKEN_PIPE))
def test_broken_pipe_is_broken_pipe_and_a_reset(code: int, phase: str) -> None:
    err = translate(oserror(code), phase)  # type: ignore[arg-type]
    assert type(err) is BrokenPipe
    assert isinstance(err, PeerReset)


@pytest.mark.parametrize("code", _each(errnos.TIMED_OUT))
def test_kernel_timeout_on_connect_is_connect_timeout(code: int) -> None:
    assert type(translate(oserror(code), "connect")) is ConnectTimeout


@pytest.mark.parametrize("detector", ["keepalive", "user-timeout"])
@pytest.mark.parametrize("phase", ["read", "write", "close"])
@pytest.mark.parametrize("code", _each(errnos.TIMED_OUT))
def test_kernel_timeout_after_connect_names_the_armed_detector(code: int, phase: str, detector: str) -> None:
    err = translate(oserror(code), phase, kernel_timeout_detector=detector)  # type: ignore[arg-type]
    assert type(err) is PeerUnresponsive
    assert err.detected_by == detector


def test_our_timeout_on_connect_is_connect_timeout() -> None:
    err = translate(socket.timeout("timed out"), "connect")
    assert type(err) is ConnectTimeout and err.errno is None


@pytest.mark.parametrize("detector", ["read-deadline", "idle-deadline", "heartbeat"])
def test_our_timeout_on_read_is_peer_unresponsive_by_that_detector(detector: str) -> None:
    err = translate(socket.timeout("timed out"), "read", timeout_detector=detector)
    assert type(err) is PeerUnresponsive
    assert err.detected_by == detector


def test_our_timeout_on_write_is_send_stalled_with_progress() -> None:
    err = translate(socket.timeout("timed out"), "write", sent=100, total=4096)
    assert type(err) is SendStalled
    assert (err.sent, err.total) == (100, 4096)


def test_kernel_timeout_on_a_shut_window_is_send_stalled_not_unresponsive() -> None:
    # Linux applies TCP_USER_TIMEOUT to zero-window probes: the peer's kernel answered every
    # probe, so the peer is alive and not reading.
    exc = OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
    err = translate(exc, "write", sent=10, total=20, window_closed=True)
    assert type(err) is SendStalled
    assert (err.sent, err.total, err.errno) == (10, 20, errno.ETIMEDOUT)
    unacked = translate(exc, "write", sent=10, total=20, window_closed=False,
                        kernel_timeout_detector="user-timeout")
    assert type(unacked) is PeerUnresponsive and unacked.detected_by == "user-timeout"


def test_socket_timeout_is_timeout_error() -> None:
    # The translation relies on this identity (Python 3.10+).
    assert socket.timeout is TimeoutError


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOTCONN, errno.EINVAL])
def test_any_other_errno_is_a_plain_connection_lost(code: int) -> None:
    err = translate(oserror(code), "read")
    assert type(err) is ConnectionLost
    assert errno.errorcode[code] in err.message


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="detected_by"):
        PeerUnresponsive("x", detected_by="telepathy")


@pytest.mark.parametrize("phase", PHASES)
def test_translating_chains_the_oserror_and_keeps_the_facts(phase: str) -> None:
    original = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    with pytest.raises(PeerReset) as info:
        with translating(phase, peer="127.0.0.1:7000"):  # type: ignore[arg-type]
            raise original
    err = info.value
    assert err.__cause__ is original
    assert (err.phase, err.peer, err.errno) == (phase, "127.0.0.1:7000", errno.ECONNRESET)
    assert "127.0.0.1:7000" in err.message


def test_translating_lets_lab_errors_and_other_exceptions_through() -> None:
    lab_err = IncompleteMessage("cut", received=3, expected=10)
    with pytest.raises(IncompleteMessage) as info:
        with translating("read"):
            raise lab_err
    assert info.value is lab_err and info.value.__cause__ is None
    with pytest.raises(KeyError):
        with translating("read"):
            raise KeyError("not an OSError")


def test_translating_passes_write_progress_to_send_stalled() -> None:
    with pytest.raises(SendStalled) as info:
        with translating("write", sent=7, total=9):
            raise socket.timeout("timed out")
    assert (info.value.sent, info.value.total) == (7, 9)
    assert isinstance(info.value.__cause__, TimeoutError)


def test_as_dict_of_an_errno_error() -> None:
    err = translate(oserror(errno.ECONNREFUSED), "connect", peer="127.0.0.1:1")
    assert err.as_dict() == {
        "error": "ConnectRefused", "message": err.message, "phase": "connect",
        "errno": errno.ECONNREFUSED, "errno_name": "ECONNREFUSED",
    }


def test_as_dict_carries_the_subclass_facts() -> None:
    assert IncompleteMessage("cut", received=3, expected=None).as_dict() == {
        "error": "IncompleteMessage", "message": "cut", "received": 3, "expected": None}
    d = translate(socket.timeout(), "read", timeout_detector="heartbeat").as_dict()
    assert (d["error"], d["detected_by"], d["after"], d["phase"]) == ("PeerUnresponsive", "heartbeat", None, "read")
    assert "errno" not in d
    d = translate(socket.timeout(), "write", sent=1, total=2).as_dict()
    assert (d["error"], d["sent"], d["total"]) == ("SendStalled", 1, 2)


def test_kind_is_the_class_name_and_everything_is_a_lab_error() -> None:
    for code in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ENETUNREACH, errno.ETIMEDOUT):
        err = translate(oserror(code), "read")
        assert isinstance(err, LabError) and err.kind == type(err).__name__


# Name resolution -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "name", "text"), [
    (socket.EAI_AGAIN, "EAI_AGAIN", "Temporary failure in name resolution"),
    (socket.EAI_NONAME, "EAI_NONAME", "Name or service not known"),
    (socket.EAI_FAIL, "EAI_FAIL", "Non-recoverable failure in name resolution"),
    (socket.EAI_NODATA, "EAI_NODATA", "No address associated with hostname"),
])
def test_a_resolver_failure_is_name_unresolvable_with_its_eai_name(code: int, name: str, text: str) -> None:
    err = translate(socket.gaierror(code, text), "resolve", peer="server:7000")
    assert type(err) is NameUnresolvable and isinstance(err, ConnectError)
    assert (err.reason, err.gai_error, err.errno, err.phase, err.peer) == ("resolver-error", name, code, "resolve",
                                                                          "server:7000")
    assert err.message == f"the resolver could not resolve the name (server:7000): {name}: {text}"


@pytest.mark.parametrize("phase", ["resolve", *PHASES])
def test_a_gaierror_is_never_read_as_an_errno_whatever_the_phase(phase: str) -> None:
    # EAI_AGAIN is -3: as an errno it would mean nothing (and -errno 3 is ESRCH); checked before any errno set.
    err = translate(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), phase)  # type: ignore[arg-type]
    assert type(err) is NameUnresolvable
    assert (err.reason, err.gai_error, err.phase) == ("resolver-error", "EAI_AGAIN", phase)
    assert err.message == "the resolver could not resolve the name: EAI_AGAIN: Temporary failure in name resolution"


def test_a_gaierror_with_an_unknown_code_keeps_the_number() -> None:
    err = translate(socket.gaierror(-999, "odd"), "resolve")
    assert (type(err), err.reason, err.gai_error, err.errno) == (NameUnresolvable, "resolver-error", "-999", -999)
    assert err.message == "the resolver could not resolve the name: -999: odd"


def test_a_gaierror_without_a_code_has_no_eai_name() -> None:
    err = translate(socket.gaierror("no address for 'x'"), "resolve", peer="x:1")
    assert (type(err), err.reason, err.gai_error, err.errno) == (NameUnresolvable, "resolver-error", None, None)
    assert err.message == "the resolver could not resolve the name (x:1): no address for 'x'"


def test_our_timeout_while_resolving_is_name_unresolvable_resolver_timeout() -> None:
    err = translate(socket.timeout("resolving 'server' took longer than 3 s"), "resolve", peer="server:7000")
    assert type(err) is NameUnresolvable
    assert (err.reason, err.gai_error, err.errno, err.phase) == ("resolver-timeout", None, None, "resolve")
    assert err.message == "the resolver did not answer before the connect deadline (server:7000)"
    assert RESOLVE_REASONS == ("resolver-error", "resolver-timeout")


def test_only_the_resolve_phase_makes_our_timeout_a_name_problem() -> None:
    assert type(translate(socket.timeout(), "connect")) is ConnectTimeout
    assert type(translate(socket.timeout(), "read")) is PeerUnresponsive


def test_a_kernel_etimedout_while_resolving_is_not_a_resolver_timeout() -> None:
    # Only our own deadline (errno None) is "resolver-timeout"; an errno goes by its set as always.
    assert type(translate(oserror(errno.ETIMEDOUT), "resolve")) is PeerUnresponsive
    assert type(translate(oserror(errno.ECONNREFUSED), "resolve")) is ConnectRefused


@pytest.mark.parametrize(("raised", "reason"), [
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "resolver-error"),
    (socket.timeout("resolving 'server' took longer than 3 s"), "resolver-timeout"),
])
def test_translating_chains_the_resolver_failure(raised: OSError, reason: str) -> None:
    with pytest.raises(NameUnresolvable) as info:
        with translating("resolve", peer="server:7000"):
            raise raised
    assert info.value.__cause__ is raised
    assert info.value.reason == reason and info.value.peer == "server:7000"


def test_as_dict_of_a_resolver_error_names_the_eai_code() -> None:
    err = translate(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "resolve",
                    peer="server:7000")
    assert err.as_dict() == {
        "error": "NameUnresolvable", "message": "the resolver could not resolve the name (server:7000): EAI_AGAIN: "
                                                "Temporary failure in name resolution",
        "phase": "resolve", "errno": socket.EAI_AGAIN, "errno_name": "EAI_AGAIN",
        "reason": "resolver-error", "gai_error": "EAI_AGAIN"}
    timed_out = translate(socket.timeout(), "resolve").as_dict()
    assert timed_out == {"error": "NameUnresolvable",
                         "message": "the resolver did not answer before the connect deadline",
                         "phase": "resolve", "reason": "resolver-timeout", "gai_error": None}
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", _each(errnos.ADDRESS_UNAVAILABLE))
def test_address_unavailable_is_its_own_connect_error(code: int, phase: str) -> None:
    err = translate(oserror(code), phase, peer="server:7000")  # type: ignore[arg-type]
    assert type(err) is AddressUnavailable
    assert isinstance(err, ConnectError) and not isinstance(err, ConnectionLost)
    assert (err.phase, err.peer, err.errno) == (phase, "server:7000", code)


def test_eaddrnotavail_on_connect_is_chained_with_exact_fields() -> None:
    # What connect() raises when every ephemeral port is taken for that destination: a plain
    # OSError (no subclass maps errno 99), translated once and chained.
    original = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    assert type(original) is OSError
    with pytest.raises(AddressUnavailable) as info:
        with translating("connect", peer="server:7000"):
            raise original
    err = info.value
    assert err.__cause__ is original
    assert (err.phase, err.peer, err.errno) == ("connect", "server:7000", errno.EADDRNOTAVAIL)
    assert err.message == ("no local port left to connect from (server:7000): "
                           "EADDRNOTAVAIL: Cannot assign requested address")
    assert err.as_dict() == {"error": "AddressUnavailable", "message": err.message, "phase": "connect",
                             "errno": errno.EADDRNOTAVAIL, "errno_name": "EADDRNOTAVAIL"}


def test_address_unavailable_is_drawn_in_the_tree() -> None:
    import lab.sockets.errors as errors_mod

    assert "AddressUnavailable       no local port left for that destination (EADDRNOTAVAIL)" in errors_mod.__doc__
    assert "AddressUnavailable" in errors_mod.__all__
