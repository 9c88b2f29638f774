"""The asynchronous retry rules, checked for every sequence of outcomes hypothesis can find:
each event ends exactly once, in success or in failure, never runs more than retries + 1
times, never waits past its maximum age, and fails for the reason that actually held."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.invoke.retry_policy import (
    THROTTLE_BACKOFF_MAX,
    Condition,
    Fail,
    Outcome,
    Retry,
    Succeed,
    decide,
    expired,
    throttle_backoff,
)

outcomes = st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=60)
delays = st.lists(st.floats(min_value=0, max_value=400, allow_nan=False), min_size=1, max_size=3)


@settings(max_examples=400, deadline=None)
@given(outcomes=outcomes, retries=st.integers(0, 2), max_age=st.integers(60, 21600), delays=delays,
       lag=st.floats(min_value=0, max_value=30, allow_nan=False))
def test_every_event_ends_exactly_once(outcomes: list[Outcome], retries: int, max_age: int,
                                       delays: list[float], lag: float) -> None:
    """Replay the queue's loop: an attempt happens `lag` seconds after the event is due (or
    not at all if it expired first); the outcome of each attempt comes from the list, which
    repeats its last outcome for as long as the event lives."""
    enqueued = now = 1_000_000.0
    invocations = throttles = 0
    ends: list[Succeed | Fail] = []
    step = 0
    while not ends:
        assert step < 10_000, "an event must end"
        if expired(now, enqueued, max_age):  # the dispatcher's check before each attempt
            ends.append(Fail(Condition.EVENT_AGE_EXCEEDED))
            break
        outcome = outcomes[min(step, len(outcomes) - 1)]
        step += 1
        if outcome is Outcome.THROTTLED:
            throttles += 1
        else:
            invocations += 1
            throttles = 0
        decision = decide(outcome, now=now, enqueued_at=enqueued, attempts=invocations, throttles=throttles,
                          retries=retries, max_age=max_age, delays=delays)
        if isinstance(decision, Retry):
            assert decision.at >= now
            assert decision.at <= enqueued + max_age  # never scheduled past the event's age
            now = decision.at + lag
            continue
        ends.append(decision)
    (end,) = ends
    assert invocations <= retries + 1
    if isinstance(end, Succeed):
        assert outcomes[min(step - 1, len(outcomes) - 1)] is Outcome.SUCCESS
    elif end.condition is Condition.RETRIES_EXHAUSTED:
        assert invocations == retries + 1
    else:
        assert now - enqueued >= max_age


@given(retries=st.integers(0, 2), attempt=st.integers(1, 3))
def test_function_errors_use_the_configured_delays(retries: int, attempt: int) -> None:
    decision = decide(Outcome.FUNCTION_ERROR, now=100.0, enqueued_at=100.0, attempts=attempt, throttles=0,
                      retries=retries, max_age=21600, delays=[60.0, 120.0])
    if attempt > retries:
        assert decision == Fail(Condition.RETRIES_EXHAUSTED)
    else:
        assert decision == Retry(at=100.0 + (60.0 if attempt == 1 else 120.0))


def test_throttle_backoff_grows_from_one_second_to_five_minutes() -> None:
    assert [throttle_backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert throttle_backoff(50) == THROTTLE_BACKOFF_MAX == 300.0


def test_a_retry_due_after_the_event_expires_is_moved_to_its_expiry() -> None:
    decision = decide(Outcome.FUNCTION_ERROR, now=1000.0, enqueued_at=960.0, attempts=1, throttles=0,
                      retries=2, max_age=60, delays=[60.0])
    assert decision == Retry(at=1020.0)
    assert expired(1020.0, 960.0, 60)
