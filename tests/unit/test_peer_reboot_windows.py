"""peer-reboot's two windows, from the reboot fault's own stamps, against made-up captures.

The cut ends somewhere inside the agent's call that removes the rules. A keepalive probe sent in
that call (robust's come every second) is answered by the new server's RST before the call
returns: seen on four workers, where the old window, which ended when the call returned, counted
that RST as "a segment from the server while cut off" and found nothing sent after the cut.
"""

from __future__ import annotations

from types import SimpleNamespace

from lab.evidence.anchor import Window
from lab.evidence.legs import Conn
from lab.evidence.pcap import ACK, FIN, RST, Endpoint, Segment
from lab.scenarios import peer_reboot

CLIENT, SERVER = Endpoint("10.0.0.2", 40000), Endpoint("10.0.0.3", 7000)
KILLED, OPENING, BACK, TEARDOWN = 100.0, 100.9, 100.95, 110.0
REBOOT = SimpleNamespace(killed_wall=KILLED, opening_wall=OPENING, back_wall=BACK)


def seg(t: float, src: Endpoint, dst: Endpoint, flags: int, *, seq: int = 1, ack: int = 500,
        payload: int = 0) -> Segment:
    return Segment(0, int(t * 1e9), src, dst, seq, ack, flags, 100, payload)


def conn(*segments: Segment) -> Conn:
    return Conn(CLIENT, SERVER, list(segments))


def test_the_cut_ends_when_its_removal_was_asked_for_and_the_after_window_starts_there() -> None:
    cut, after = peer_reboot.windows(REBOOT, TEARDOWN)
    assert (cut.start, cut.end) == (KILLED, OPENING)
    assert (after.start, after.end) == (OPENING, TEARDOWN)


def test_a_keepalive_probe_answered_while_the_agent_removes_the_rules_is_after_the_cut() -> None:
    probe = seg(OPENING + 0.01, CLIENT, SERVER, ACK, ack=500)
    reset = seg(OPENING + 0.0101, SERVER, CLIENT, RST, seq=500, ack=0)
    c = conn(probe, reset)
    cut, after = peer_reboot.windows(REBOOT, TEARDOWN)
    assert peer_reboot.quiet_server(c, cut)[0] is True
    ok, why = peer_reboot.rst_answers(c, after)
    assert ok is True, why
    # The window that ended when the agent's call returned saw that RST as said while cut off.
    assert peer_reboot.quiet_server(c, Window(KILLED, BACK))[0] is False


def test_what_the_dying_kernel_sent_before_the_removal_was_asked_for_still_fails_the_quiet_proof() -> None:
    for flags in (RST, FIN | ACK, ACK):
        c = conn(seg(KILLED + 0.001, SERVER, CLIENT, flags))
        ok, why = peer_reboot.quiet_server(c, peer_reboot.windows(REBOOT, TEARDOWN)[0])
        assert ok is False and why.startswith("1 segments from the server")


def test_an_rst_that_does_not_answer_the_clients_segment_fails_the_after_proof() -> None:
    asked = seg(OPENING + 0.02, CLIENT, SERVER, ACK, ack=500, payload=113)
    _, after = peer_reboot.windows(REBOOT, TEARDOWN)
    assert peer_reboot.rst_answers(conn(asked, seg(OPENING + 0.021, SERVER, CLIENT, RST, seq=501)), after)[0] is False
    assert peer_reboot.rst_answers(conn(asked), after) == (
        False, "client segment (113 bytes) +20.0 ms after the cut, no RST from the server")
    assert peer_reboot.rst_answers(conn(), after) == (False, "the client sent nothing on the old connection after the cut")
