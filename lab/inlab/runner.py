"""Runs a scenario inside the lab: the subjects, the fault, the watchdog, the timeline, the verdict.

This runs in the client container (``python3 -m lab.inlab.runner run NAME``), so the
clock that times the fault and the clock that times the detection are one
clock, and the fault is injected over the lab network in a millisecond instead
of through ``docker exec``. The host's ``lab run`` and the pytest suite call it
the same way and read its JSON report.

A scenario's ``run(ctx)`` gets a :class:`Context`::

    def run(ctx):
        ctx.side_by_side(worker, fault=lambda: ctx.apply("freeze", server="threaded"))

    def worker(ctx, subject, outcome):
        subject.connect()
        ctx.exchange(subject, outcome, b"before")   # intact round trip, recorded
        ctx.ready()                                   # wait here until the fault is in place
        ctx.exchange(subject, outcome, b"after")    # what happens now is what is judged

Implementations run side by side, one thread each. A worker still inside a
call ``watchdog`` seconds after the fault is *blocked*: the runner records
that, then shuts its socket down from outside so the thread ends. Everything
the lab was told to do (toxics, iptables rules, stopped processes, server
behaviours) is undone before and after every run, also when the run fails.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.addresses import AGENT_PORT, CONTROL_PORTS, DEFAULT_PORT, LOOPBACK, ROUTER_AGENT_PORT, ROUTER_HOST, \
    SERVER_HOST, SERVER_PORTS, STANDBY_AGENT_PORT, STANDBY_CONTROL_PORT, STANDBY_HOST, STANDBY_PORT, \
    SANDBOX_UID, TOXIPROXY_API, TOXIPROXY_HOST
from lab.inlab import mutants, runreport, submission
from lab.inlab.agent.client import AgentError
from lab.inlab import scenario as scn
from lab.inlab.runreport import RunReport
from lab.inlab.context import Worker
from lab.sockets.errors import LabError
from lab.sockets.robust import RobustConfig
from lab.toolerrors import SetupError, UsageError
from lab.inlab.scenario import Check, Outcome, Scenario
from lab.inlab.subjects import RobustSubject, Subject, expected_echo, make_subject
from lab.inlab.toxics import ToxiproxyError

DEFAULT_WATCHDOG = 10.0
REMOTE_MARGIN_S = 30.0
READY_TIMEOUT = 15.0


class ScenarioAbort(SetupError):
    """The scenario could not be carried out (the lab did not do what was asked)."""


class Context:
    """One run's context. What a scenario may use of it is lab.inlab.context.ScenarioContext,
    what a fault may use is lab.inlab.context.FaultContext (tests/unit/test_context.py checks both)."""

    def __init__(self, scenario: Scenario, impls: list[str], *, config: RobustConfig | None = None,
                 watchdog: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        from lab.inlab.agent.client import AgentClient
        from lab.inlab.toxics import Toxiproxy

        self.scenario = scenario
        self.impls = impls
        self.config = config or RobustConfig()
        self.watchdog = watchdog or scenario.watchdog or DEFAULT_WATCHDOG
        self.clock = clock
        self.t0 = clock()
        self.timeline: list[dict[str, Any]] = []
        self.outcomes: dict[str, Outcome] = {impl: Outcome(impl) for impl in impls}
        self.checks: dict[str, list[Check]] = {impl: [] for impl in impls}
        self.fidelity: list[Check] = []
        self.fault_at: float | None = None
        self.fault_wall: float | None = None      # time.time() when the fault was in place
        self.teardown_wall: float | None = None   # time.time() when the lab began closing the subjects
        self.mutant: mutants.Mutant | None = None  # the mutation suite's weakened fault, if any
        self._client_ports: dict[str, set[int]] = {}   # impl -> local ports its connections used
        self.unjudged: list[str] = []   # graded, not judged: see _unjudged_impls
        self.sandboxed: list[tuple[str, str, Subject]] = []   # (impl, server, subject) run in the sandbox
        self._ports_at_fault: dict[str, set[int]] = {}   # a sandboxed impl's connections open when the fault went in
        self._port_order: dict[str, list[int]] = {}      # ... and every port it used, in the order first seen
        self._port_looks: dict[str, list[set[int]]] = {}  # ... and those open at each look (each exchange), in order
        self._released_by_ready: set[str] = set()          # impls whose worker's ready() stamped released_at
        self._gated = False                                # the running group has a fault point
        self.proving_for: str | None = None              # prove_each: whose connections the proofs look at now
        self.own_fidelity: dict[str, list[Check]] = {}   # each graded program's proofs on its own connections
        self.started_wall = time.time()
        self.toxiproxy = Toxiproxy(TOXIPROXY_API)
        self.server_agent = AgentClient(SERVER_HOST, AGENT_PORT)
        self.client_agent = AgentClient(LOOPBACK, AGENT_PORT)
        self.router_agent = AgentClient(ROUTER_HOST, ROUTER_AGENT_PORT)   # the path's faults
        self.standby_agent = AgentClient(STANDBY_HOST, STANDBY_AGENT_PORT)   # the second server host's
        from lab.inlab.faults.clock_jump import WallClock

        self.wall_clock = WallClock()     # the offset file libfaketime'd children read (clock-jump)
        self.facts: dict[str, Any] = {}
        self.on_event: Callable[[dict[str, Any]], None] | None = None   # run(events=...): each mark as it happens
        self.pcaps: dict[str, bytes] = {}
        self.host_faults: dict[str, str] = {}
        self._cleanups: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._arrived: set[str] = set()
        self._arrival = threading.Condition(self._lock)

    # Time and record -------------------------------------------------------------------------
    def now(self) -> float:
        return round(self.clock() - self.t0, 4)

    def mark(self, actor: str, what: str, **facts: Any) -> float:
        t = self.now()
        event = {"t": t, "actor": actor, "what": what, **facts}
        with self._lock:
            self.timeline.append(event)
        self._tell(event)
        return t

    def _tell(self, event: dict[str, Any]) -> None:
        # Outside the timeline's lock: a slow reader of the stream must not hold the clients up.
        if self.on_event is not None:
            self.on_event(event)

    def mark_at(self, wall: float, actor: str, what: str, **facts: Any) -> float:
        """Record an event that happened at wall-clock time ``wall`` (time.time()), learnt of later.

        It goes into the timeline at its own time, among the events around it (a restart the
        kernel dated, for example), not at the moment the lab found out.
        """
        t = round(self.now() - (time.time() - wall), 4)
        with self._lock:
            at = len(self.timeline)
            while at > 0 and self.timeline[at - 1]["t"] > t:
                at -= 1
            self.timeline.insert(at, {"t": t, "actor": actor, "what": what, **facts})
        self._tell(self.timeline[at])
        return t

    def check(self, impl: str, name: str, ok: bool, detail: str = "") -> None:
        self.checks[impl].append(Check(name, bool(ok), detail))

    def prove(self, name: str, ok: bool, detail: str = "") -> None:
        """A fidelity check: evidence that the fault really happened (on a graded program's own
        connections while :meth:`prove_each` runs a proof for it)."""
        check = Check(name, bool(ok), detail)
        if self.proving_for is not None:
            self.own_fidelity.setdefault(self.proving_for, []).append(check)
        else:
            self.fidelity.append(check)

    def prove_each(self, proof: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``proof(ctx, ...)`` on the judged implementations' connections, then on each graded program's.

        For a graded program the proof sees one implementation, the program, and its
        connections that were open when the fault went in (or, for a fault in place before
        anyone connected, its first one): reconnecting afterwards changes nothing. Its
        results go to :attr:`own_fidelity`, never to the run's own fidelity. A program whose
        connections the kernel never showed (it never connected) gets no proof of its own.
        """
        proof(self, *args, **kwargs)
        for impl in self.unjudged:
            if not self._proof_ports(impl):
                continue
            self.proving_for = impl
            try:
                proof(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - its connections may be anything at all
                self.prove(f"the proof could be read on its own connection ({type(exc).__name__})", False, str(exc))
            finally:
                self.proving_for = None

    def on_cleanup(self, action: Callable[[], None]) -> None:
        self._cleanups.append(action)

    # Where to connect -------------------------------------------------------------------------
    def target(self, server: str = "threaded", path: str | None = None) -> tuple[str, int]:
        path = path or self.scenario.path
        host = SERVER_HOST if path == "direct" else TOXIPROXY_HOST
        return host, SERVER_PORTS[server]

    def subject(self, impl: str, server: str = "threaded", *, config: RobustConfig | None = None) -> Subject:
        host, port = self.target(server)
        if submission.is_submission(impl):
            # No reply from a sandboxed program may be awaited for ever, even one the watchdog missed.
            return make_subject(impl, host, port, hard_timeout=self.watchdog + REMOTE_MARGIN_S)
        subject = make_subject(impl, host, port, config=config or self.config)
        if isinstance(subject, RobustSubject):
            # Every heartbeat on the timeline, with its nonce as seq: the picture folds them ("PING ×5").
            subject.on_heartbeat = lambda what, nonce: self.mark(f"client[{impl}]", what, seq=nonce)
        return subject

    # The server's own controls ----------------------------------------------------------------
    def server_control(self, server: str = "threaded", **request: Any) -> dict[str, Any]:
        from lab.server.control import control_request

        reply = control_request(SERVER_HOST, CONTROL_PORTS[server], request, timeout=5.0)
        if not reply.get("ok"):
            raise ScenarioAbort(f"server {server} refused {request}: {reply.get('error')}")
        return reply

    def server_stats(self, server: str = "threaded") -> dict[str, Any]:
        return self.server_control(server, cmd="stats")["stats"]

    # Faults ------------------------------------------------------------------------------------
    def apply(self, fault: str, **params: Any) -> Any:
        """Inject a registered fault now; it is cleared at the end of the run whatever happens.

        With ``host_faults`` (``--host-fault freeze=pause``), the named fault is replaced by
        the same failure done at container level by the host (see lab/inlab/faults/host.py).
        """
        from lab.inlab import faults

        if fault in self.host_faults:
            params = {"action": self.host_faults[fault], "service": "server"}
            fault = "host"
        # Under the mutation suite the fault talks to the lab through a context that weakens
        # its requests (lab.inlab.mutants); everything it and the scenario read back is real.
        seen_by_fault: Any = self
        if self.mutant is not None and self.mutant.fault == fault:
            seen_by_fault = mutants.MutatedContext(self, self.mutant)
        handle = faults.create(fault, seen_by_fault, params)   # decodes and checks the parameters first
        self.on_cleanup(handle.clear)
        self.fault_at = self.mark("lab", f"fault: {fault}", **{k: v for k, v in params.items()
                                                               if isinstance(v, (int, float, str, bool))})
        try:
            handle.apply()
        except (AgentError, ToxiproxyError) as exc:
            # A fault that cannot confirm itself (its wait timed out, a request was refused) was
            # not proven: that is a failed fidelity check with its reason, not a runner abort.
            self.prove(f"the {fault} fault took effect", False, str(exc))
            self.mark("lab", f"fault NOT confirmed: {fault}", reason=str(exc)[:200])
            return handle
        # Wall-clock time, the clock tcpdump stamps packets with: proofs anchor captures to it.
        self.fault_wall = time.time()
        self.facts.setdefault("fault_wall", self.fault_wall)
        self.mark("lab", f"fault in place: {fault}")
        return handle

    # Packet evidence ---------------------------------------------------------------------------
    # Where a capture can be: each end's own interface, and either link of the router (its lab side,
    # where the clients' and Toxiproxy's packets arrive; its backend side, towards the server).
    def capture(self, where: str = "server", port: int = DEFAULT_PORT, *,
                filter: str | None = None) -> "CaptureHandle":  # noqa: A002 - tcpdump's word
        """Start tcpdump in the server's (or the client's) namespace; stopped at the latest at clean-up.

        ``filter`` (the agent's small grammar) narrows the default ``tcp and port PORT``, e.g. to
        ``tcp and src port 7000`` when only what the server sends matters and a healthy run
        would push more bytes the other way than a capture may hold.
        """
        if where not in CAPTURE_POINTS:
            raise scn.ScenarioError(f"capture: no capture point {where!r}; accepted: {', '.join(CAPTURE_POINTS)}")
        agent = {"server": self.server_agent, "client": self.client_agent,
                 "server2": self.standby_agent}.get(where, self.router_agent)
        name = f"{self.scenario.name[:31 - len(where)].strip('-')}-{where}"   # the agent's limit: 32
        chosen = filter or f"tcp and port {port}"
        if where.startswith("router-"):
            agent.capture_start(name, chosen, side=where.removeprefix("router-"))
        else:
            agent.capture_start(name, chosen)
        handle = CaptureHandle(self, agent, name, where, port)
        self.on_cleanup(handle.discard)
        self.mark("lab", f"capturing at the {where}", filter=chosen)
        return handle

    # Running the subjects ----------------------------------------------------------------------
    def ready(self) -> None:
        """Called by a worker when its pre-fault part is done; returns once the fault is in place."""
        impl = threading.current_thread().name
        with self._arrival:
            self._arrived.add(impl)
            self._arrival.notify_all()
        if not self._gate.wait(timeout=READY_TIMEOUT + self.watchdog):
            raise ScenarioAbort("the fault was never released to the workers")
        # Its time bound counts from here at the earliest (timeline.bound_start): the lab's time to
        # put the fault in place, and to wake this thread, is not the implementation's.
        outcome = self.outcomes.get(impl)
        # The first ready() of a worker sets it, over the start stamp of a group without a fault point.
        if outcome is not None and impl not in self._released_by_ready:
            self._released_by_ready.add(impl)
            outcome.released_at = self.now()

    def exchange(self, subject: Subject, outcome: Outcome, body: bytes) -> bytes:
        """One round trip, recorded; a reply that differs from what was sent counts as corrupt."""
        self.note_ports(subject)
        reply = subject.exchange(body)
        # A sandboxed subject checks its replies itself (sequence number and body, message by message).
        intact = getattr(subject, "last_exchange_intact", None)
        if intact if intact is not None else reply == expected_echo(subject, body):
            outcome.exchanges_ok += 1
            self.mark(f"client[{subject.impl}]", "echo intact", seq=subject.seq, bytes=len(reply))
        else:
            outcome.corrupt += 1
            self.mark(f"client[{subject.impl}]", "echo CORRUPT", seq=subject.seq, bytes=len(reply),
                      expected=len(expected_echo(subject, body)))
        return reply

    def side_by_side(self, worker: Worker, *,
                     fault: Callable[[], Any] | None = None, server: str = "threaded",
                     configs: dict[str, RobustConfig] | None = None, sequential: bool = False) -> None:
        """Run ``worker`` once per implementation, in parallel, with the fault between their two halves.

        ``sequential`` runs the implementations one after the other instead (for faults
        whose measurement two parallel clients would distort, like a bandwidth limit);
        it takes no ``fault``: put the fault in place before calling.
        """
        if sequential:
            if fault is not None:
                raise ValueError("sequential runs take no fault: apply it before side_by_side()")
            for impl in self.impls:
                self._run_group([impl], worker, None, server, configs)
        else:
            self._run_group(list(self.impls), worker, fault, server, configs)

    def _run_group(self, impls: list[str], worker: Worker,
                   fault: Callable[[], Any] | None, server: str, configs: dict[str, RobustConfig] | None) -> None:
        if fault is not None:
            # A scenario may run several groups, each with its fault (one per server): the gate a
            # previous group opened must not let this one's workers past their fault point.
            with self._arrival:
                self._gate.clear()
                self._arrived -= set(impls)
        self._gated = fault is not None
        subjects = {impl: self.subject(impl, server, config=(configs or {}).get(impl)) for impl in impls}
        remote = {impl: s for impl, s in subjects.items() if submission.is_submission(impl)}
        if remote:
            # The sandbox's uid reaches nothing until now, and only this group's targets from now on.
            from lab.inlab import sandboxed

            allowed = sandboxed.allow(self.client_agent, [(s.host, s.port) for s in remote.values()])
            self.mark("lab", "sandbox may reach", targets=[f"{a}:{p}" for a, p in allowed])
            self.sandboxed += [(impl, server, s) for impl, s in remote.items()]
        threads: dict[str, threading.Thread] = {}
        done: dict[str, threading.Event] = {impl: threading.Event() for impl in impls}
        for impl in impls:
            t = threading.Thread(target=self._work, name=impl, daemon=True,
                                 args=(worker, subjects[impl], self.outcomes[impl], done[impl]))
            threads[impl] = t
            t.start()
        if fault is not None:
            deadline = time.monotonic() + READY_TIMEOUT
            with self._arrival:
                while not all(impl in self._arrived or done[impl].is_set() for impl in impls):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        late = sorted(set(impls) - self._arrived - {i for i in impls if done[i].is_set()})
                        if any(impl not in self.unjudged for impl in late):
                            raise ScenarioAbort(f"workers did not reach the fault point in {READY_TIMEOUT:g} s: "
                                                f"{late}")
                        # Graded code that dawdles must not cost the judged ones their run: the fault
                        # goes in without it, and it meets the fault whenever it gets there.
                        for impl in late:
                            self.outcomes[impl].facts["late_to_fault"] = READY_TIMEOUT
                            self.mark(f"client[{impl}]", f"not at the fault point after {READY_TIMEOUT:g} s")
                        break
                    self._arrival.wait(timeout=min(left, 0.2))
            fault()
            if self.fault_at is None:
                self.fault_at = self.mark("lab", "fault")
            for impl, s in remote.items():
                # The graded program's connections that meet the fault: its own proofs look at these.
                self._ports_at_fault[impl] = self._conversation_at_fault(impl, s)
        self._gate.set()
        # The watchdog counts from the workers' release, as the time bounds do: never from when the
        # fault was asked for, since putting it in place is the lab's own time.
        start = self.now()
        for impl in impls:
            left = start + self.watchdog - self.now()
            done[impl].wait(timeout=max(left, 0.0))
        for impl in impls:
            if not done[impl].is_set():
                outcome = self.outcomes[impl]
                outcome.status = "blocked"
                outcome.ended_at = None
                outcome.message = f"still inside a call {self.watchdog:g} s after the fault (watchdog)"
                self.mark(f"client[{impl}]", "BLOCKED at the watchdog", watchdog_s=self.watchdog)
                subjects[impl].force_unblock()
        for impl, t in threads.items():
            t.join(timeout=10)
            if t.is_alive():
                self.mark("lab", f"worker {impl} did not end after its socket was shut down")
        if self.teardown_wall is None:
            self.teardown_wall = time.time()
        for impl, subject in subjects.items():
            self.note_ports(subject)
            self.outcomes[impl].measurements.update(subject.socket_stats())
            try:
                subject.close()
            except (OSError, LabError):
                pass

    def _work(self, worker: Worker, subject: Subject, outcome: Outcome,
              done: threading.Event) -> None:
        actor = f"client[{subject.impl}]"
        try:
            prepare = getattr(subject, "prepare", None)
            if prepare is not None:   # a sandboxed program: its process up and its module imported
                prepare()
            if not self._gated and outcome.released_at is None:
                # No fault point in this group (the fault went in before it): the bound starts here,
                # once the sandbox is up, unless the worker's own ready() says later.
                outcome.released_at = self.now()
            worker(self, subject, outcome)
            if outcome.status != "blocked":
                outcome.status = "completed"
                outcome.ended_at = self.now()
                self.mark(actor, "completed", exchanges=outcome.exchanges_ok)
        except BaseException as exc:  # noqa: BLE001 - every failure is the data we came for
            self._record_error(actor, outcome, exc)
        finally:
            done.set()

    def _record_error(self, actor: str, outcome: Outcome, exc: BaseException) -> None:
        t = self.now()
        if outcome.status == "blocked":
            outcome.facts["after_unblock"] = getattr(exc, "error_name", None) or type(exc).__name__
            return
        if isinstance(exc, submission.SubmissionLoadFailed):
            # The program passed its probe but could not get ready again for this subject.
            outcome.status, outcome.error, outcome.message = exc.status, exc.error, exc.message
            outcome.ended_at = t if exc.status != "blocked" else None
            outcome.facts["phase"] = "import"
            self.mark(actor, f"could not be loaded: {exc.error}", message=exc.message[:200])
            return
        outcome.status = "error"
        # A sandboxed program's failure carries the name it gave; everything else is an exception here.
        outcome.error = getattr(exc, "error_name", None) or type(exc).__name__
        outcome.message = str(exc)
        outcome.ended_at = t
        if isinstance(exc, LabError):
            outcome.facts.update(exc.as_dict())
        errno_value = getattr(exc, "errno", None)
        if getattr(exc, "errno_name", None):
            outcome.errno_name = exc.errno_name  # type: ignore[attr-defined]
        elif isinstance(errno_value, int):
            import errno as errno_mod
            outcome.errno_name = errno_mod.errorcode.get(errno_value)
        self.mark(actor, f"ERROR {outcome.error}", message=str(exc)[:160], errno=outcome.errno_name)

    # The connections under test ------------------------------------------------------------------
    def note_ports(self, subject: Subject) -> None:
        """Remember the local port of the subject's socket: proofs look at these connections only."""
        if submission.is_submission(subject.impl):
            self._note_sandboxed_ports(subject)
            return
        sock = getattr(subject, "_sock", None)
        try:
            port = sock.getsockname()[1] if sock is not None else 0
        except OSError:   # closed, or shut from outside by the watchdog
            return
        if port:
            with self._lock:
                self._client_ports.setdefault(subject.impl, set()).add(port)
                self.facts.setdefault("client_ports", {})[subject.impl] = sorted(self._client_ports[subject.impl])

    @property
    def judged(self) -> list[str]:
        """The implementations this run judges: code being graded beside them is not among them
        (while :meth:`prove_each` proves for a graded program, that program alone)."""
        if self.proving_for is not None:
            return [self.proving_for]
        return [impl for impl in self.impls if impl not in self.unjudged]

    def _proof_ports(self, impl: str) -> set[int]:
        with self._lock:
            at_fault = self._ports_at_fault.get(impl)
            if at_fault:
                return set(at_fault)
            # No fault point (the fault was in place before anyone connected): its conversation is
            # the first connection open at two looks in a row, for a connection of a few ms (the
            # red team's daemon connects every 50 ms) can be the first seen; failing that, the first.
            looks = self._port_looks.get(impl, [])
            for earlier, later in zip(looks, looks[1:]):
                if earlier & later:
                    return {min(earlier & later)}
            order = self._port_order.get(impl, [])
            return {order[0]} if order else set()

    def _conversation_at_fault(self, impl: str, subject: Subject) -> set[int]:
        """The graded program's connections open at the fault that were open at its last exchange too.

        A connection opened and closed in between is not the conversation the fault meets: the
        red team's daemon connects every 50 ms, and on a busy machine one of its connections,
        open for a few ms, was caught at the fault and failed the program's own proof for lack
        of data after it. When none was open at both moments (no exchange before the fault, or
        a connection made anew), every one open at the fault counts, as before.
        """
        with self._lock:
            looks = self._port_looks.get(impl, [])
            before = set(looks[-1]) if looks else set()
        now = self._note_sandboxed_ports(subject)
        return (now & before) or now

    def _note_sandboxed_ports(self, subject: Subject) -> set[int]:
        """The local ports of a sandboxed subject's open connections, as the kernel's table lists them."""
        from lab.inlab import sandboxed, tcptable

        target = getattr(subject, "_target_addr", None)
        if target is None:
            try:
                target = (sandboxed.resolve(subject.host), subject.port)
            except OSError:
                return set()
            subject._target_addr = target  # type: ignore[attr-defined]
        ports = tcptable.ports_of(tcptable.read(), uid=SANDBOX_UID, remote=target)
        with self._lock:
            order = self._port_order.setdefault(subject.impl, [])
            order += sorted(p for p in ports if p not in order)
            self._client_ports.setdefault(subject.impl, set()).update(ports)
            self._port_looks.setdefault(subject.impl, []).append(set(ports))
            if ports:
                self.facts.setdefault("client_ports", {})[subject.impl] = sorted(self._client_ports[subject.impl])
        return ports

    def client_ports(self, impl: str | None = None) -> set[int]:
        """The local ports the subjects' connections used: one implementation's, or every judged one's.

        Fault proofs rest on the judged implementations' connections only: code being graded
        beside them may do anything at all (connect twice, or never), and must not be able to
        make the proof that the fault happened fail or pass.
        """
        if self.proving_for is not None and impl in (None, self.proving_for):
            return self._proof_ports(self.proving_for)
        with self._lock:
            if impl is not None:
                return set(self._client_ports.get(impl, ()))
            return set().union(*(self._client_ports.get(i, set()) for i in self.judged))

    # Clean-up ----------------------------------------------------------------------------------
    def reset_lab(self) -> None:
        reset_lab(self.toxiproxy, self.server_agent, self.client_agent, self.router_agent, self.standby_agent)

    def run_cleanups(self) -> None:
        while self._cleanups:
            action = self._cleanups.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - one failed clean-up must not skip the others
                self.mark("lab", f"clean-up failed: {exc}")


CAPTURE_POINTS = ("server", "client", "router-lab", "router-backend", "server2")


class CaptureHandle:
    def __init__(self, ctx: Context, agent: Any, name: str, where: str, port: int) -> None:
        self.ctx, self.agent, self.name, self.where, self.port = ctx, agent, name, where, port
        self.summary: Any = None
        self.pcap: Any = None
        self.stopped = False

    def stop(self) -> Any:
        """Stop the capture and summarise it (a lab.evidence.CaptureSummary); kept in the report's facts."""
        from lab.evidence import read_capture, render, summarize, tcpdump_stats

        if self.stopped:
            return self.summary
        self.stopped = True
        data, counts = self.agent.capture_stop_counted(self.name)
        self.pcap = read_capture(data)      # the raw segments, for proofs anchored in time (lab.evidence.anchor)
        self.summary = summarize(data, server_port=self.port)
        stats = tcpdump_stats("\n".join(counts))
        self.ctx.facts.setdefault("captures", {})[self.where] = {
            "bytes": len(data), "summary": self.summary.as_dict(), "text": render(self.summary),
            "tcpdump": {"captured": stats.captured, "received": stats.received, "dropped": stats.dropped}}
        if stats.dropped:
            # A proof that counts segments (or finds none) reads a capture with holes: say so, and fail.
            self.ctx.prove(f"the {self.where} capture is complete", False,
                           f"tcpdump's ring overflowed: {stats.dropped} packets dropped by the kernel, "
                           f"{stats.captured} captured; a count read from this capture would be short")
        self.ctx.pcaps[self.where] = data
        return self.summary

    def discard(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.agent.capture_stop(self.name)


def reset_lab(toxiproxy: Any = None, server_agent: Any = None, client_agent: Any = None,
              router_agent: Any = None, standby_agent: Any = None) -> None:
    """Everything back to normal: no toxics, no rules, no stopped process, default server behaviours."""
    from lab.inlab.agent.client import AgentClient
    from lab.server.control import control_request
    from lab.inlab.toxics import Toxiproxy

    (toxiproxy or Toxiproxy(TOXIPROXY_API)).reset()
    # The router first: the server-agent's API is reached through it.
    (router_agent or AgentClient(ROUTER_HOST, ROUTER_AGENT_PORT)).reset()
    (server_agent or AgentClient(SERVER_HOST, AGENT_PORT)).reset()
    (client_agent or AgentClient(LOOPBACK, AGENT_PORT)).reset()
    (standby_agent or AgentClient(STANDBY_HOST, STANDBY_AGENT_PORT)).reset()
    servers = [(server, SERVER_HOST, port, CONTROL_PORTS[server]) for server, port in SERVER_PORTS.items()]
    for server, host, port, control in [*servers, ("standby", STANDBY_HOST, STANDBY_PORT, STANDBY_CONTROL_PORT)]:
        wait_listening(host, port, timeout=15.0)
        reply = control_request(host, control, {"cmd": "reset"}, timeout=5.0)
        if not reply.get("ok"):
            raise ScenarioAbort(f"server {server} refused to reset: {reply.get('error')}")


def wait_listening(host: str, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ScenarioAbort(f"{host}:{port} is not accepting connections after {timeout:g} s: {exc}") from exc
            time.sleep(0.1)


def run(scenario: Scenario, impls: list[str] | None = None, *, watchdog: float | None = None,
        pcaps: bool = False, host_faults: dict[str, str] | None = None,
        mutant: mutants.Mutant | None = None,
        events: Callable[[dict[str, Any]], None] | None = None) -> RunReport:
    """Run one scenario; returns the report (JSON-able).

    ``events`` is called with each timeline event as it is marked (``run --events`` prints
    them, one ``EVENT {json}`` line each, for ``lab demo`` to show while the run goes on).

    ``pcaps`` adds the raw captures as ``{"pcaps": {where: base64}}``, so the host can
    save them: the container's file system is read-only and nothing is mounted.
    """
    impls = impls or list(scenario.expect)
    unjudged = _unjudged_impls(scenario, impls)
    unknown = [i for i in impls if i not in scenario.expect and i not in unjudged]
    if unknown:
        raise scn.ScenarioError(f"scenario {scenario.name} has no oracle for {', '.join(unknown)}; it judges: "
                                f"{', '.join(scenario.expect)}")
    ctx = Context(scenario, impls, watchdog=watchdog)
    ctx.on_event = events
    ctx.unjudged = unjudged
    ctx.host_faults = dict(host_faults or {})
    if mutant is not None:
        ctx.mutant = mutant
        ctx.facts["mutant"] = mutant.key
    from lab.inlab import remote

    try:
        if _load_submissions(ctx):
            return report(ctx, None)
    except remote.DriverUnavailable as exc:
        # The lab's part failed (no sandbox answered), not the program: nothing can be judged.
        ctx.mark("lab", f"ABORTED: the sandbox did not answer: {exc}")
        ctx.facts["not_run"] = "not run: the sandbox did not answer"
        ctx.impls = []
        return report(ctx, f"the sandbox did not answer on the driver port: {exc}")
    aborted = None
    try:
        ctx.reset_lab()
        ctx.mark("lab", "ready", scenario=scenario.name, impls=impls)
        scenario.run(ctx)
    except Exception as exc:  # noqa: BLE001 - the lab failed to do its part: report it, never a bare traceback
        import traceback

        aborted = str(exc) if isinstance(exc, ScenarioAbort) else f"{type(exc).__name__}: {exc}"
        ctx.facts["traceback"] = traceback.format_exc()[-4000:]
        ctx.mark("lab", f"ABORTED: {aborted}")
    finally:
        ctx.run_cleanups()
        try:
            ctx.reset_lab()
        except Exception as exc:  # noqa: BLE001 - reported, and the host side sweeps anyway
            ctx.mark("lab", f"reset after the run failed: {exc}")
    _verify_sandboxed(ctx)
    rep = report(ctx, aborted)
    if pcaps:
        rep["pcaps"] = {where: base64.b64encode(data).decode("ascii") for where, data in ctx.pcaps.items()}
    return rep


# Graded implementations (lab.grading.card) ---------------------------------------------------------------
# Code with no oracle of its own (a submitted file, or a built-in a scenario does not judge) runs
# beside the judged implementations in scenarios whose workers drive any subject, i.e. those
# that judge "naive". Its outcome is reported under "submissions", never judged here.
def gradable_scenarios() -> list[str]:
    return sorted(name for name, s in scn.discover().items() if "naive" in s.expect and not s.not_gradable)


def _unjudged_impls(scenario: Scenario, impls: list[str]) -> list[str]:
    from lab.inlab.subjects import IMPLS

    unjudged = []
    for impl in impls:
        if impl in scenario.expect:
            continue
        if submission.is_submission(impl):
            try:
                submission.parse_impl(impl)
            except submission.SubmissionError as exc:
                raise scn.ScenarioError(str(exc)) from None
        elif impl not in IMPLS:
            continue  # unknown: refused by the caller with the list of what this scenario judges
        unjudged.append(impl)
    if unjudged and scenario.not_gradable:
        raise scn.ScenarioError(f"scenario {scenario.name} cannot grade {', '.join(unjudged)}: "
                                f"{scenario.not_gradable}; scenarios that can grade any code: "
                                f"{', '.join(gradable_scenarios())}")
    if unjudged and "naive" not in scenario.expect:
        raise scn.ScenarioError(f"scenario {scenario.name} cannot grade {', '.join(unjudged)}: it judges only "
                                f"{', '.join(scenario.expect)}, with workers that drive the robust connection "
                                f"itself; scenarios that can grade any code: {', '.join(gradable_scenarios())}")
    return unjudged


def _load_submissions(ctx: Context) -> list[str]:
    """Make sure every sandboxed program gets ready before the lab is touched; returns those that did not.

    Each is asked for its hello in a process of its own (in the sandbox, never here). A
    program that exits, breaks the protocol, or whose Python file raises, breaks the
    contract or never finishes importing gets that as its outcome, and the scenario is not
    run at all.
    """
    from lab.inlab import remote

    failed = []
    for impl in ctx.unjudged:
        if not submission.is_submission(impl):
            continue
        try:
            hello = remote.probe(impl)   # DriverUnavailable (the lab's failure) goes to the caller
            ctx.facts.setdefault("sandboxed", {})[impl] = {"framing": hello.framing, "msglen": hello.msglen}
        except remote.DriverUnavailable:
            raise
        except (submission.SubmissionLoadFailed, remote.RemoteFailure) as exc:
            outcome = ctx.outcomes[impl]
            if isinstance(exc, remote.RemoteFailure):   # it exited, or broke the protocol, before its hello
                exc = submission.SubmissionLoadFailed("error", exc.error_name, str(exc))
            outcome.status, outcome.error, outcome.message = exc.status, exc.error, exc.message
            outcome.facts["phase"] = "import"
            ctx.mark(f"client[{impl}]", f"could not be loaded: {exc.error}", message=exc.message[:200])
            failed.append(impl)
    if failed:
        ctx.facts["not_run"] = f"not run: {', '.join(failed)} could not be loaded"
        ctx.impls = []
    return failed


def _verify_sandboxed(ctx: Context) -> None:
    """Check what each sandboxed subject claimed against the server's own record (after the reset)."""
    from lab.inlab import sandboxed

    if not ctx.sandboxed:
        return
    try:
        sandboxed.close_all(ctx.client_agent)
    except (OSError, AgentError) as exc:
        ctx.mark("lab", f"could not close the sandbox's way to the servers: {exc}")
    for impl, server, subject in ctx.sandboxed:
        outcome = ctx.outcomes[impl]
        try:
            facts = sandboxed.verify(subject, lambda **req: ctx.server_control(server, **req),
                                     completed=outcome.status == "completed", since=ctx.started_wall)
        except (OSError, ValueError, ScenarioAbort) as exc:
            outcome.facts["record_error"] = f"the server's record could not be read: {exc}"
            continue
        for key in ("bytes_sent", "messages", "delivered"):
            outcome.facts[key] = outcome.facts.get(key, 0) + facts.pop(key, 0)
        for key in ("fabricated", "duplicated", "lost"):
            if key in facts:
                outcome.facts[key] = outcome.facts.get(key, 0) + facts.pop(key)
        if "rejected" in facts and "rejected" not in outcome.facts:
            outcome.facts["rejected"] = facts.pop("rejected")
        ctx.mark(f"client[{impl}]", "checked against the server's record",
                 **{k: outcome.facts.get(k) for k in ("messages", "delivered", "fabricated", "duplicated", "lost")})


def _submission_reports(ctx: Context, aborted: str | None) -> dict[str, Any]:
    out = {}
    for impl in ctx.unjudged:
        outcome = ctx.outcomes[impl]
        if aborted and outcome.status == "completed" and outcome.ended_at is None:
            # Never finished: the run was aborted while this code was still inside a call.
            outcome.status = "blocked"
            outcome.message = "still inside a call when the run was aborted"
        out[impl] = {"judged": False, "checks": [c.as_dict() for c in ctx.checks.get(impl, [])],
                     "outcome": outcome.as_dict(),
                     "fidelity": [c.as_dict() for c in ctx.own_fidelity.get(impl, [])]}
    return out


def report(ctx: Context, aborted: str | None) -> RunReport:
    from lab.inlab import timeline as tl

    verdicts = {}
    in_place = tl.fault_in_place({"fault_at": ctx.fault_at, "timeline": ctx.timeline})
    for impl in ctx.impls:
        if impl in ctx.unjudged:
            continue
        checks = scn.judge(ctx.scenario.expect[impl], ctx.outcomes[impl], fault_at=in_place) + ctx.checks[impl]
        verdicts[impl] = {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks],
                          "outcome": ctx.outcomes[impl].as_dict()}
    fidelity_ok = bool(ctx.fidelity) and all(c.ok for c in ctx.fidelity)
    ok = aborted is None and fidelity_ok and all(v["ok"] for v in verdicts.values())
    return {"schema_version": runreport.SCHEMA_VERSION, "scenario": ctx.scenario.summary(), "ok": ok, "aborted": aborted, "fault_at": ctx.fault_at,
            "watchdog_s": ctx.watchdog, "fidelity": [c.as_dict() for c in ctx.fidelity],
            "fidelity_ok": fidelity_ok, "verdicts": verdicts, "timeline": ctx.timeline, "facts": ctx.facts,
            "bounds": ctx.config.bounds(), "submissions": _submission_reports(ctx, aborted)}


def render(rep: RunReport) -> str:
    """The report as plain text: runs of identical events folded, times since the fault in place."""
    from lab.inlab import timeline as tl

    s = rep["scenario"]
    lines = [f"== {s['title']} ({s['name']}) — HOWTO: {s['howto']} — path: {s['path']}",
             f"   wire: {' '.join(s['wire'].split())}", f"   injection: {' '.join(s['injection'].split())}", ""]
    lines += tl.plain_lines(rep)
    lines.append("")
    lines.append("fault really happened:" if rep["fidelity_ok"] else "FAULT NOT PROVEN:")
    for c in rep["fidelity"] or [{"ok": False, "name": "no evidence recorded", "detail": "the scenario proved nothing"}]:
        lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {tl.detail_of(c)}")
    for impl, v in rep["verdicts"].items():
        lines.append(f"{impl}: {'PASS' if v['ok'] else 'FAIL'}")
        for c in v["checks"]:
            lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {tl.detail_of(c, rep, impl)}")
    for impl, sub in rep.get("submissions", {}).items():
        o = sub["outcome"]
        lines.append(f"{impl}: not judged (graded by lab.grading.card): {o['status']}"
                     + (f" {o['error']}" if o["error"] else "") + (f" ({o['message']})" if o["message"] else ""))
    if rep["aborted"]:
        lines.append(f"ABORTED: {rep['aborted']}")
    lines.append(f"verdict: {'PASS' if rep['ok'] else 'FAIL'}")
    lines.append(f"remember: {s['remember']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.inlab.runner", description="Run lab scenarios inside the lab.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="the scenarios, one line each")
    p_list.add_argument("--json", action="store_true")
    p_run = sub.add_parser("run", help="run one scenario and judge it")
    p_run.add_argument("name")
    p_run.add_argument("--impl", action="append",
                       help="implementation(s) to run (default: all it judges); also sandbox:NAME, a program the host "
                            "started in the sandbox (lab.host.sandbox)")
    p_run.add_argument("--watchdog", type=float, default=None, help="seconds before a call counts as blocked")
    p_run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p_run.add_argument("--events", action="store_true",
                       help=f"print each timeline event as it happens, as a line {EVENT_PREFIX}{{json}}")
    p_run.add_argument("--pcaps", action="store_true", help="add the captures to the report, base64 (with --json)")
    p_run.add_argument("--host-fault", action="append", default=[], metavar="FAULT=ACTION",
                       help="let the host do FAULT at container level instead (freeze=pause, vanish=disconnect, "
                            "crash=kill); only under a harness that answers (tests/lab/host_faults.py)")
    p_run.add_argument("--source", metavar="-", choices=["-"], default=None,
                       help="read the scenario file from stdin instead of lab/scenarios/ (NAME is its NAME; "
                            "`lab run path/to/x.py` hands a file that is not in the image over this way)")
    p_run.add_argument("--mutant", metavar="FAULT:NAME", default=None,
                       help="test only: run with a weakened fault from lab/inlab/mutants.py (lab selftest)")
    sub.add_parser("reset", help="undo every fault: toxics, iptables rules, stopped servers, behaviours")
    opts = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        return _main(parser, opts, stack)


EVENT_PREFIX = "EVENT "   # never "{": the host takes the last line that starts with "{" for the report
_PRINTING = threading.Lock()


def print_event(event: dict[str, Any]) -> None:
    """One timeline event on stdout, at once (the clients' threads mark events side by side).

    ``wall`` (this clock's seconds since the epoch, when it is printed) lets a live view measure
    how long the event took to reach it: the containers and the host share the kernel's clock."""
    line = EVENT_PREFIX + json.dumps({**event, "wall": round(time.time(), 6)}, default=str)
    with _PRINTING:
        print(line, flush=True)


def _main(parser: argparse.ArgumentParser, opts: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    try:
        if opts.command == "list":
            found = scn.discover()
            if opts.json:
                print(json.dumps([s.summary() for s in found.values()]))
            else:
                for s in found.values():
                    print(f"{s.name:<24} {s.howto:<22} {s.title}")
            return 0
        if opts.command == "reset":
            reset_lab()
            print("lab reset: no toxics, no rules, servers running with default behaviour")
            return 0
        if opts.source:
            # Kept until the run is over: the module is imported from there (tracebacks read it).
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lab-scenario-"))
            chosen = scn.load_source(opts.name, sys.stdin.buffer.read(), Path(folder))
        else:
            chosen = scn.get(opts.name)
        if opts.watchdog is not None and opts.watchdog <= 0:
            parser.error(f"--watchdog must be a number of seconds > 0; got {opts.watchdog}")
        host_faults = {}
        for item in opts.host_fault:
            fault, sep, action = item.partition("=")
            if not sep or not fault or not action:
                parser.error(f"--host-fault takes FAULT=ACTION (e.g. freeze=pause); got {item!r}")
            host_faults[fault] = action
        mutant = mutants.get(opts.mutant) if opts.mutant else None
        rep = run(chosen, opts.impl, watchdog=opts.watchdog, pcaps=opts.pcaps, host_faults=host_faults,
                  mutant=mutant, events=print_event if opts.events else None)
    except UsageError as exc:   # an unknown scenario, a malformed scenario file, an impl it cannot run
        print(f"lab.inlab.runner: {exc}", file=sys.stderr)
        return exc.exit_code
    print(runreport.dumps(rep) if opts.json else render(rep), flush=True)
    code = 0 if rep["ok"] else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
