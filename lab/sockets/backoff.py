"""Reconnect policy: how long to wait before the next attempt, and when to give up.

This module only *computes* delays; it never sleeps and never reads the wall
clock on its own. The clock (monotonic seconds) and the randomness are handed
in, so a test can drive a whole outage with a fake clock in microseconds and
the caller decides how to wait::

    policy = Backoff(base=0.05, cap=2.0, jitter="full", deadline=30.0)
    run = policy.start(clock=time.monotonic, rng=random.Random())
    while True:
        try:
            return connect()
        except ConnectError as exc:
            delay = run.next_delay()
            if delay is None:          # attempts or deadline used up
                raise
            sleep(delay)

Jitter spreads the reconnects of many clients that lost the same server at the
same moment, so they do not come back as one synchronised wave:

``full``          uniform in [0, min(cap, base * multiplier**n)] (AWS "full jitter")
``decorrelated``  uniform in [base, previous * 3], capped (AWS "decorrelated jitter")
``none``          exactly min(cap, base * multiplier**n): for tests and demonstrations

``max_attempts`` counts delays handed out (retries after a failure), so
``max_attempts=3`` allows the first try plus three more. ``deadline`` bounds
the whole outage: no delay is handed out that would start an attempt later
than ``deadline`` seconds after :meth:`Backoff.start`; the last delay is
shortened to land exactly on it. At least one of the two must be set: the lab
never retries forever.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from typing import Literal

Jitter = Literal["full", "decorrelated", "none"]
JITTERS: tuple[str, ...] = ("full", "decorrelated", "none")

Clock = Callable[[], float]


def _positive(name: str, value: object, *, allow_none: bool = False, at_least: float | None = None) -> None:
    if value is None and allow_none:
        return
    accepted = "a finite number > 0" + (" or None" if allow_none else "")
    if at_least is not None:
        accepted = f"a finite number >= {at_least}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"backoff {name!r} must be {accepted}; got {value!r} ({type(value).__name__})")
    bad = not math.isfinite(value) or (value < at_least if at_least is not None else value <= 0)
    if bad:
        raise ValueError(f"backoff {name!r} must be {accepted}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """An exponential backoff policy with jitter, a cap and a budget. Immutable; see the module docstring."""

    base: float = 0.05
    cap: float = 2.0
    multiplier: float = 2.0
    jitter: Jitter = "full"
    max_attempts: int | None = None
    deadline: float | None = 30.0

    def __post_init__(self) -> None:
        _positive("base", self.base)
        _positive("cap", self.cap)
        _positive("multiplier", self.multiplier, at_least=1.0)
        _positive("deadline", self.deadline, allow_none=True)
        if self.cap < self.base:
            raise ValueError(f"backoff 'cap' must be >= base ({self.base!r}); got {self.cap!r}")
        if self.jitter not in JITTERS:
            raise ValueError(f"backoff 'jitter' must be one of {', '.join(JITTERS)}; got {self.jitter!r}")
        if self.max_attempts is not None and (isinstance(self.max_attempts, bool)
                                              or not isinstance(self.max_attempts, int) or self.max_attempts < 0):
            raise ValueError(f"backoff 'max_attempts' must be an int >= 0 or None; got {self.max_attempts!r}")
        if self.max_attempts is None and self.deadline is None:
            raise ValueError("backoff needs a budget: set 'max_attempts' (int >= 0) or 'deadline' (seconds > 0), "
                             "or both; got max_attempts=None and deadline=None")

    def start(self, *, clock: Clock = time.monotonic,
              rng: random.Random | Callable[[], float] | None = None) -> "BackoffRun":
        """Begin one outage: the deadline counts from now (by ``clock``)."""
        return BackoffRun(self, clock=clock, rng=rng)


class BackoffRun:
    """The state of one outage under a :class:`Backoff` policy. Not thread-safe."""

    def __init__(self, policy: Backoff, *, clock: Clock,
                 rng: random.Random | Callable[[], float] | None) -> None:
        self.policy = policy
        self._clock = clock
        if rng is None:
            rng = random.Random()
        if isinstance(rng, random.Random):
            self._random: Callable[[], float] = rng.random
        elif callable(rng):
            self._random = rng
        else:
            raise ValueError(f"rng must be a random.Random or a callable returning a float in [0, 1); got {rng!r}")
        self.started_at = clock()
        self.attempts = 0  # delays handed out so far
        self._previous = policy.base

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started_at

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a deadline."""
        if self.policy.deadline is None:
            return None
        return max(0.0, self.policy.deadline - self.elapsed)

    def _uniform(self, low: float, high: float) -> float:
        r = self._random()
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"the random source must return a float in [0, 1]; it returned {r!r}")
        return low + (high - low) * r

    def _raw_delay(self) -> float:
        p = self.policy
        if p.jitter == "decorrelated":
            delay = min(p.cap, self._uniform(p.base, self._previous * 3))
            self._previous = delay
            return delay
        # min() before the power would overflow: multiplier**n grows without bound.
        exponent = min(self.attempts, 1024)
        try:
            ceiling = min(p.cap, p.base * p.multiplier ** exponent)
        except OverflowError:
            ceiling = p.cap
        return ceiling if p.jitter == "none" else self._uniform(0.0, ceiling)

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None: give up (budget spent)."""
        p = self.policy
        if p.max_attempts is not None and self.attempts >= p.max_attempts:
            return None
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return None
        delay = self._raw_delay()
        self.attempts += 1
        if remaining is not None:
            delay = min(delay, remaining)
        return delay


__all__ = ["Backoff", "BackoffRun", "JITTERS", "Jitter"]
