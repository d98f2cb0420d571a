"""The client's wall clock jumps: deadlines computed from time.time() misfire, monotonic ones hold."""

import json
import subprocess
import sys
import threading
import time

from lab.inlab.faults.clock_jump import child_env
from lab.inlab.scenario import Expect, bound
from lab.sockets.robust import RobustConfig
from lab.toolerrors import CheckFailed, SetupError

NAME = "clock-jump"
TITLE = "A wall-clock jump"
HOWTO = "Non-blocking Sockets"
WIRE = """
Nothing happens on the wire. A client waits up to 5 s for a message from a server that has
nothing to say, and while it waits its wall clock jumps an hour, as when NTP steps a clock,
an administrator sets it or a virtual machine resumes. A deadline computed as time.time() + 5
is now an hour away, or an hour past: jumped forward, it fires at once, though nothing went
wrong; jumped back, it never fires. A deadline computed from time.monotonic(), a clock that
only ever moves forward at a steady rate, fires 5 s after the wait began either way.
"""
INJECTION = ("Each implementation runs in a process of its own with libfaketime preloaded (Debian's package), "
             "reading its wall-clock offset from a file; the lab writes +3600 s into the file while both wait "
             "(first part, checks only), then -3600 s (the judged part). Their monotonic clock is the kernel's.")
PATH = "direct"
DEADLINE_S = RobustConfig().timeouts.read     # 5 s: robust's read deadline; naive-walltime gets the same
JUMP_S = 3600
WATCHDOG = DEADLINE_S + 3.0
EXPECT = {
    "robust": Expect("error", ("PeerUnresponsive",), within=bound("stuck_reply", 0.5),
                     note="its 5 s read deadline + 0.5 s, counted on time.monotonic(), whatever the wall clock did"),
    "naive-walltime": Expect("blocked", note="clock jumped back an hour: its time.time() deadline is an hour away"),
}
REMEMBER = "Measure durations with time.monotonic(); time.time() is for timestamps, and it jumps."
LOOK_FOR = ("In each process the skew time.time() − time.monotonic() moves by exactly the jump, while its monotonic "
            "clock keeps pace with the kernel's uptime. Forward: naive-walltime gives up at once, robust after 5 s. "
            "Back: robust still after 5 s, naive-walltime never.")


def start(impl, host, port):
    return subprocess.Popen([sys.executable, "-m", "lab.inlab.clockchild", "--impl", impl, "--host", host,
                             "--port", str(port), "--deadline", str(DEADLINE_S)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


class Child:
    """One implementation's process and what it said, read in a thread of its own."""

    def __init__(self, impl, host, port):
        self.impl = impl
        self.proc = start(impl, host, port)
        self.events = []
        self.waiting = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "waiting":
                self.waiting.set()
            elif event.get("event") == "done":
                self.done.set()
        self.done.set()

    def result(self):
        return next((e for e in self.events if e.get("event") == "done"), None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        return self.proc.stderr.read()[-500:] if self.proc.stderr else ""


class ChildError(CheckFailed):
    """What the child process raised, carried by name (the runner records ``error_name``)."""

    def __init__(self, name, message):
        super().__init__(message)
        self.error_name = name


def worker(ctx, subject, outcome):
    child = Child(subject.impl, subject.host, subject.port)
    try:
        if not child.waiting.wait(10.0):
            raise SetupError(f"{subject.impl}'s process never began waiting: {child.stop()}")
        ctx.ready()
        child.done.wait(ctx.watchdog + 1.5)
    finally:
        child.stop()
        outcome.measurements["clock"] = child.events
    done = child.result()
    if done is not None and done["status"] == "error":
        raise ChildError(done["error"], done.get("message", ""))


def forward_part(ctx, host, port):
    """The clock jumps forward: run both, jump, collect; judged by checks (the EXPECT judges the back jump)."""
    children = {impl: Child(impl, host, port) for impl in ctx.judged}
    jump = None
    try:
        for child in children.values():
            child.waiting.wait(10.0)
        jump = ctx.apply("clock-jump", offset_s=JUMP_S)
        at = time.monotonic()
        for child in children.values():
            child.done.wait(DEADLINE_S + 3.0)
    finally:
        for child in children.values():
            child.stop()
        if jump is not None:   # a failed apply must surface as itself, not as a name error here
            jump.clear()
    return {impl: child.events for impl, child in children.items()}, at


UPTIME_STEP = 0.01    # /proc/uptime's resolution, in seconds
MAX_DRIFT = 0.01      # how far (s) the monotonic clock may seem to part from the kernel's uptime: rounding alone


def drift(ticks):
    """How far, at least, a process's monotonic clock moved against the kernel's uptime over ``ticks``
    (seconds; 0 or less when one constant offset fits them all), or None without two bracketed readings.

    Each reading is time.monotonic() between two reads of /proc/uptime (``u0``, ``u1``, 10 ms
    steps), so its offset monotonic − uptime lies in [m − u1 − 0.01, m − u0]. A steady clock
    has one offset for every reading: the intervals meet. A process kept off the CPU between two
    reads only widens its bracket; it cannot part the intervals, so load cannot fail this, while
    a monotonic clock that skipped even a few tens of milliseconds does.
    """
    bracketed = [e for e in ticks if "u0" in e and "u1" in e]
    if len(bracketed) < 2:
        return None
    lowest_high = min(e["m"] - e["u0"] for e in bracketed)
    highest_low = max(e["m"] - e["u1"] - UPTIME_STEP for e in bracketed)
    return round(highest_low - lowest_high, 4)


def skew_jump(events, at):
    """(skew before, skew after, monotonic drift against the kernel's uptime, when after ``at`` the new
    skew was first seen, largest gap between readings).

    "After" is any reading taken once the offset was written (``at``); the last one is the
    freshest. Code whose wall-clock deadline the jump fires ends at once, its "done" carrying a
    reading, perhaps a few ms after the write and before its next 0.1 s tick: that reading counts.
    A reading after the write that still shows the old skew (libfaketime had not re-read the file
    yet) is not the moment the jump was seen: that is the first one whose skew moved.
    """
    ticks = [e for e in events if e.get("event") in ("waiting", "clock", "done") and "m" in e and "skew" in e]
    before = [e for e in ticks if e["m"] < at]
    after = [e for e in ticks if e["m"] >= at]
    if not before or not after:
        return None
    gap = max((b["m"] - a["m"] for a, b in zip(ticks, ticks[1:])), default=0.0)
    moved = [e for e in after if abs(e["skew"] - before[-1]["skew"]) > 1.0]
    return before[-1]["skew"], after[-1]["skew"], drift(ticks), (moved[0] if moved else after[-1])["m"] - at, gap


def prove_jump(ctx, label, events_by_impl, at, offset):
    parts, ok = [], bool(events_by_impl)
    for impl, events in events_by_impl.items():
        seen = skew_jump(events, at)
        if seen is None:
            ok = False
            parts.append(f"{impl}: no clock readings on both sides of the jump")
            continue
        before, after, apart, when, gap = seen
        moved = after - before
        good = abs(moved - offset) <= 0.5 and apart is not None and apart <= MAX_DRIFT
        ok = ok and good
        kept = ("no uptime readings to compare its monotonic clock with" if apart is None else
                f"its monotonic clock kept to the kernel's uptime within {max(apart, 0.0) * 1000:.0f} ms "
                f"(limit {MAX_DRIFT * 1000:.0f} ms; largest gap between readings {gap * 1000:.0f} ms)")
        parts.append(f"{impl}: time.time() − time.monotonic() went {before:.3f} → {after:.3f} ({moved:+.3f} s, "
                     f"seen {when * 1000:.0f} ms after the write); {kept}")
    ctx.prove(f"{label}: each process's wall clock moved by {offset:+d} s and its monotonic clock did not jump",
              ok, "; ".join(parts) or "no process ran")


def run(ctx):
    host, port = ctx.target()
    events, at = forward_part(ctx, host, port)
    prove_jump(ctx, "jump forward", events, at, JUMP_S)
    for impl, evs in events.items():
        done = next((e for e in evs if e.get("event") == "done"), None)
        waiting = next((e for e in evs if e.get("event") == "waiting"), None)
        took = done["t"] if done else None
        since_jump = (waiting["m"] + took - at) if done and waiting else None
        ctx.facts[f"{impl}_forward"] = {"status": done and done["status"], "error": done and done.get("error"),
                                        "wait_s": took, "after_jump_s": since_jump}
        if impl == "robust":
            ctx.check(impl, f"clock jumped forward: the monotonic deadline fired after {DEADLINE_S:g} s, not earlier",
                      bool(done) and done.get("error") == "PeerUnresponsive" and DEADLINE_S - 0.05 <= took
                      <= DEADLINE_S + 0.5, f"{done and done.get('error')} after {took} s of waiting")
        else:
            ctx.check(impl, "clock jumped forward: the time.time() deadline fired at once (a misfire)",
                      bool(done) and done.get("error") == "TimeoutError" and since_jump is not None
                      and since_jump < 0.5 and took < DEADLINE_S - 0.5,
                      f"{done and done.get('error')} after {took} s of waiting, "
                      f"{since_jump if since_jump is None else round(since_jump, 3)} s after the jump")
    state = {}
    ctx.side_by_side(worker, fault=lambda: state.setdefault("at", (ctx.apply("clock-jump", offset_s=-JUMP_S),
                                                                    time.monotonic())))
    back = {impl: ctx.outcomes[impl].measurements.get("clock", []) for impl in ctx.judged}
    prove_jump(ctx, "jump back", back, state["at"][1], -JUMP_S)
    for impl in ctx.judged:
        ctx.facts[f"{impl}_back_status"] = ctx.outcomes[impl].status
