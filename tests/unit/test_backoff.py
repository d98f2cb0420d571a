"""The reconnect policy, driven by a fake clock and seeded randomness: nothing here sleeps."""

from __future__ import annotations

import random

import pytest

from lab.sockets.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_no_jitter_doubles_then_caps():
    run = Backoff(base=0.1, cap=1.0, jitter="none", max_attempts=7, deadline=None).start(clock=FakeClock())
    delays = [run.next_delay() for _ in range(8)]
    assert delays[:7] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert delays[7] is None


def test_max_attempts_counts_delays_handed_out():
    run = Backoff(jitter="none", max_attempts=3, deadline=None).start(clock=FakeClock())
    assert [run.next_delay() is not None for _ in range(5)] == [True, True, True, False, False]
    assert run.attempts == 3


def test_max_attempts_zero_never_retries():
    run = Backoff(max_attempts=0, deadline=None).start(clock=FakeClock())
    assert run.next_delay() is None


@pytest.mark.parametrize("seed", range(20))
def test_full_jitter_stays_under_the_exponential_ceiling(seed):
    policy = Backoff(base=0.05, cap=2.0, jitter="full", max_attempts=30, deadline=None)
    run = policy.start(clock=FakeClock(), rng=random.Random(seed))
    for n in range(30):
        delay = run.next_delay()
        assert delay is not None
        assert 0.0 <= delay <= min(2.0, 0.05 * 2**n)


@pytest.mark.parametrize("seed", range(20))
def test_decorrelated_jitter_stays_between_base_and_cap(seed):
    policy = Backoff(base=0.05, cap=1.5, jitter="decorrelated", max_attempts=50, deadline=None)
    run = policy.start(clock=FakeClock(), rng=random.Random(seed))
    previous = 0.05
    for _ in range(50):
        delay = run.next_delay()
        assert delay is not None
        assert 0.05 <= delay <= min(1.5, previous * 3) + 1e-12
        previous = delay


def test_random_source_may_be_a_plain_callable():
    run = Backoff(base=0.1, cap=10.0, jitter="full", max_attempts=3, deadline=None).start(
        clock=FakeClock(), rng=lambda: 0.5)
    assert [run.next_delay() for _ in range(3)] == pytest.approx([0.05, 0.1, 0.2])


def test_same_seed_same_delays():
    policy = Backoff(jitter="decorrelated", max_attempts=10, deadline=None)
    a = policy.start(clock=FakeClock(), rng=random.Random(7))
    b = policy.start(clock=FakeClock(), rng=random.Random(7))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]


def test_deadline_shortens_the_last_delay_and_then_gives_up():
    clock = FakeClock()
    run = Backoff(base=1.0, cap=1.0, jitter="none", deadline=2.5).start(clock=clock)
    waited = []
    while (delay := run.next_delay()) is not None:
        waited.append(delay)
        clock.advance(delay)  # the caller's sleep
    assert waited == pytest.approx([1.0, 1.0, 0.5])
    assert clock.now - run.started_at == pytest.approx(2.5)


def test_deadline_counts_time_spent_in_attempts_too():
    clock = FakeClock()
    run = Backoff(base=0.1, cap=0.1, jitter="none", deadline=1.0).start(clock=clock)
    assert run.next_delay() == pytest.approx(0.1)
    clock.advance(5.0)  # one slow connect attempt ate the whole budget
    assert run.next_delay() is None
    assert run.remaining() == 0.0


def test_both_budgets_first_one_spent_wins():
    clock = FakeClock()
    run = Backoff(base=0.01, cap=0.01, jitter="none", max_attempts=2, deadline=100.0).start(clock=clock)
    assert run.next_delay() is not None and run.next_delay() is not None
    assert run.next_delay() is None


def test_huge_attempt_counts_do_not_overflow():
    run = Backoff(base=0.5, cap=3.0, multiplier=10.0, jitter="none", max_attempts=5000, deadline=None).start(
        clock=FakeClock())
    delays = [run.next_delay() for _ in range(5000)]
    assert delays[-1] == 3.0


@pytest.mark.parametrize(("kwargs", "field", "accepted"), [
    ({"base": 0}, "'base'", "> 0"),
    ({"base": -1.0}, "'base'", "> 0"),
    ({"base": float("nan")}, "'base'", "finite"),
    ({"base": "0.1"}, "'base'", "number"),
    ({"cap": float("inf")}, "'cap'", "finite"),
    ({"base": 2.0, "cap": 1.0}, "'cap'", ">= base"),
    ({"multiplier": 0.5}, "'multiplier'", ">= 1.0"),
    ({"jitter": "equal"}, "'jitter'", "full, decorrelated, none"),
    ({"max_attempts": -1}, "'max_attempts'", "int >= 0"),
    ({"max_attempts": 2.5}, "'max_attempts'", "int >= 0"),
    ({"max_attempts": True}, "'max_attempts'", "int >= 0"),
    ({"deadline": 0}, "'deadline'", "> 0 or None"),
    ({"max_attempts": None, "deadline": None}, "budget", "max_attempts"),
])
def test_bad_parameters_name_field_value_and_what_is_accepted(kwargs, field, accepted):
    with pytest.raises(ValueError) as info:
        Backoff(**kwargs)
    text = str(info.value)
    assert field in text and accepted in text
    name = field.strip("'")
    if name in kwargs:
        assert repr(kwargs[name]) in text


def test_random_source_out_of_range_is_rejected():
    run = Backoff(max_attempts=1, deadline=None).start(clock=FakeClock(), rng=lambda: 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run.next_delay()


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        Backoff().base = 1.0  # type: ignore[misc]
