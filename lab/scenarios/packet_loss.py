"""One packet in ten is lost, in both directions (iptables statistic DROP)."""

import math

from lab.addresses import DEFAULT_PORT
from lab.evidence.anchor import Window, segments
from lab.evidence.streams import resent
from lab.inlab.faults._iptables import Tally, per_direction
from lab.inlab.scenario import Expect
from lab.inlab.workloads import converse
from lab.sockets.robust import RobustConfig

NAME = "packet-loss"
TITLE = "Packet loss"
HOWTO = "Using a Socket"
WIRE = """
The router between the hosts drops a random 10 % of the packets to and from the server's port,
as a lossy or congested link does. TCP repairs
it: what was not acknowledged is sent again, within milliseconds when a tail-loss probe or
duplicate ACKs reveal the gap, after a retransmission timeout (200 ms at least on Linux) when
nothing does. Every byte still arrives, in order, only later. This is the failure TCP was
built to hide, and socket code should not notice it beyond the delay.
"""
PROBABILITY = 0.1
INJECTION = (f"The router-agent drops packets of port {DEFAULT_PORT} at random on its forwarding hop, probability "
             f"{PROBABILITY} each way (iptables statistic in FORWARD), with a rule that only counts in front of each, "
             "so the rate is measured.")
PATH = "direct"
WATCHDOG = 20.0  # 80 exchanges, some waiting out 200 ms retransmission timeouts: 2 to 7 s measured
COUNT = 80       # exchanges after the fault: some 320 packets each way in all, so the loss proof can tell 0.1 from 0.01
SIZE = 2048
Z = 3.5          # the loss proof's interval: the configured share +- Z binomial standard deviations
# robust's heartbeat, as everywhere else, would call a peer dead after 3 s without a byte. On this
# path that is wrong: one segment lost four times in a row is 0.2 + 0.4 + 0.8 + 1.6 = 3 s of
# silence at Linux's 200 ms minimum retransmission timeout, fewer losses when a busy machine has
# raised the timeout, and at 10 % each way it happened (in 2 of 16 suite runs on four workers). A live
# peer behind a lossy link needs longer: here 10 s of silence, 12 s unacknowledged, 12 s per reply.
LOSSY = RobustConfig().replace(dead_after=10.0, user_timeout_ms=12_000,
                               timeouts=RobustConfig().timeouts.replace(read=12.0))
EXPECT = {
    "robust": Expect("completed", note="every reply intact, some late; its heartbeat allows 10 s of silence here, "
                                       "longer than TCP's backoff after a few losses in a row"),
    "naive": Expect("completed", note="TCP retransmits; blocking loops just wait"),
}
REMEMBER = "TCP hides loss by retransmitting: you see delay, never missing bytes."
LOOK_FOR = ("Retransmitted segments (the same sequence numbers again), some a few milliseconds after the original, "
            "some after gaps of 200 ms or more; every byte arrives in the end. The DROP counters, against the "
            "counting rules in front of them, give the loss rate each way.")


def run(ctx):
    capture = ctx.capture("server")
    handle = {}

    def fault():
        # Counting rules first in the chain: every packet of the port passes them, then meets the loss rules.
        handle["tally"] = Tally(ctx.router_agent, DEFAULT_PORT, where="router")
        handle["loss"] = ctx.apply("loss", port=DEFAULT_PORT, probability=PROBABILITY)

    ctx.side_by_side(converse(before=1, after=COUNT, size=SIZE), fault=fault, configs={"robust": LOSSY})
    rules = ctx.router_agent.counters()     # one reading for both, so they count the same packets
    met = per_direction(rules, handle["tally"].ids, DEFAULT_PORT, where="router")
    dropped = per_direction(rules, handle["loss"].ids, DEFAULT_PORT, target="DROP", where="router")
    capture.stop()
    win = Window(ctx.fault_wall, ctx.teardown_wall)
    ports = ctx.client_ports()
    others = [s for s in segments(capture.pcap, win, dst_port=DEFAULT_PORT) if s.src.port not in ports]
    for direction in ("in", "out"):
        prove_loss_rate(ctx, direction, met[direction], dropped[direction], others)
    again_in = resent(capture.pcap, win, dst_port=DEFAULT_PORT, peer_ports=ports)
    again_out = resent(capture.pcap, win, src_port=DEFAULT_PORT, peer_ports=ports)
    ctx.prove("what was lost was sent again, after the fault, on the subjects' connections",
              len(again_in) + len(again_out) > 0,
              f"client to server: {len(again_in)} segments sent again, server to client: {len(again_out)}")
    for impl in ctx.impls:
        ctx.check(impl, f"all {COUNT + 1} replies intact", ctx.outcomes[impl].exchanges_ok == COUNT + 1,
                  f"{ctx.outcomes[impl].exchanges_ok} intact")


def prove_loss_rate(ctx, direction, n, dropped, others):
    """One direction's measured drop share must be the configured one, within a binomial interval.

    ``n`` packets met the loss rule (the counting rule in front of it saw them all) and it
    dropped ``dropped``, each with probability p: dropped/n lies within p +- Z*sqrt(p(1-p)/n).
    ``n`` must be large enough for that interval to leave out a tenth of p: a sample too small
    to tell 0.1 from 0.01 proves nothing. The counters count the whole port, so the capture
    must show that the subjects' connections were all there was on it.
    """
    share = dropped / n if n else 0.0
    half = Z * math.sqrt(PROBABILITY * (1 - PROBABILITY) / n) if n else 0.0
    low, high = PROBABILITY - half, PROBABILITY + half
    way = "to the server" if direction == "in" else "from the server"
    ctx.prove(f"the measured loss {way} is the configured {PROBABILITY:g}",
              n > 0 and low <= share <= high and low > PROBABILITY / 10 and not others,
              f"{dropped} of {n} packets {way} dropped = {share:.3f}; {Z:g} sigma interval [{low:.3f}, {high:.3f}] "
              f"(iptables counters); segments of other connections on :{DEFAULT_PORT} after the fault: {len(others)}")
