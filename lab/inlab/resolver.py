"""What the two resolver scenarios (dns-silent, dns-refused) share: the worker, the run and the counters' proof.

The fault fails the whole resolver of the client's namespace (lab/inlab/faults/_dns.py), and
the lab's own requests resolve names too, so while it is in place the run talks to the
client-agent only (127.0.0.1, no name): the counters are read and the fault is cleared before
anything asks for "server" or "toxiproxy" again.

Evidence: :class:`~lab.inlab.faults._dns.DnsTally`'s kernel counters, read once the fault is
in place and again when the subjects are done, so what they count happened while the fault was
in place. Before the fault the scenario resolves the subjects' host name itself and the tally must
see that query answered: counters that cannot see an answer would make "no answer" worthless.

Standard library only: the runner uses it inside the client container.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lab.inlab.context import ScenarioContext, Worker
from lab.inlab.faults._dns import DnsTally
from lab.inlab.scenario import Outcome
from lab.inlab.subjects import Subject
from lab.inlab.workloads import body

Judge = Callable[[dict[str, int], int], tuple[bool, str]]


def connect_by_name() -> Worker:
    """Wait for the fault, then connect to the subject's host *by name*, then one round trip."""

    def worker(ctx: ScenarioContext, subject: Subject, outcome: Outcome) -> None:
        actor = f"client[{subject.impl}]"
        ctx.ready()
        started = time.monotonic()
        ctx.mark(actor, "connecting by name", to=f"{subject.host}:{subject.port}")
        try:
            subject.connect()
        finally:
            outcome.measurements["connect_s"] = round(time.monotonic() - started, 4)
        ctx.mark(actor, "connected")
        ctx.exchange(subject, outcome, body(1, 100))

    return worker


def _lookup(host: str) -> tuple[bool, str]:
    # The lab's own check of the resolver, outside the fault's window; bounded like robust's.
    from lab.sockets.robust import resolve

    try:
        found = resolve(host, 0, 12.0)
        return True, found[0][4][0]
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def run(ctx: ScenarioContext, apply: Callable[[], Any], judge: Judge) -> dict[str, Any]:
    """Tally, a healthy lookup, the fault (``apply()``, e.g. ``lambda: ctx.apply("dns-silent")``) under the
    subjects, the counters, the fault cleared."""
    host, _ = ctx.target()
    tally = DnsTally(ctx.client_agent)
    healthy, address = _lookup(host)
    before = tally.counts()
    ctx.prove(f"before the fault the resolver answered the lab's own lookup of {host!r}, and the counters saw it",
              healthy and before["queries"] >= 1 and before["answers"] >= 1 and before["errors"] == 0,
              f"{host} → {address}; queries {before['queries']}, DNS answers {before['answers']}, "
              f"ICMP errors {before['errors']}")
    state: dict[str, Any] = {}

    def inject() -> None:
        # Counted from the fault in place, not from the request: the lab's own healthcheck resolves
        # names every few seconds, and a query answered while the rule was still going in was
        # counted as an answer under the fault (8 queries, 6 refused, 2 answered, on a busy machine).
        state["fault"] = apply()
        state["at_fault"] = tally.counts()

    ctx.side_by_side(connect_by_name(), fault=inject)
    during = tally.counts()      # still in place: nothing else has resolved since the subjects ended
    if state.get("fault") is not None:
        state["fault"].clear()
    at_fault = state.get("at_fault", during)
    seen = {k: during[k] - at_fault[k] for k in during}
    ctx.facts["dns_counts"] = seen
    ctx.mark("lab", "resolver counters while the fault was in place", **seen)
    subjects = len(ctx.judged)
    ok, detail = judge(seen, subjects)
    ctx.prove("the subjects' queries reached the resolver's address while the fault was in place: "
              f"at least one per judged subject ({subjects})",
              seen["queries"] >= max(subjects, 1), f"{seen['queries']} queries in to 127.0.0.11")
    name = getattr(state.get("fault"), "name", "none applied")
    ctx.prove(f"the resolver's fault ({name}) did what it claims to each query", ok, detail)
    healthy_after, address_after = _lookup(host)
    ctx.facts["resolved_after"] = address_after
    ctx.mark("lab", "resolver after the fault", resolved=healthy_after, address=address_after)
    return seen


__all__ = ["connect_by_name", "run"]
