"""What happens to an asynchronous event after each attempt, as Lambda decides it.

Pure functions of the event's history and its settings, so that the rules can be checked
exhaustively (tests/unit/invoke/test_retry_policy.py):

- a function error is retried `retries` times, after `delays[i]` seconds (the last delay
  repeats), then the event fails with `RetriesExhausted`;
- a throttle (or an environment that could not start) is not a function error: the event
  goes back on the queue with exponential backoff from 1 s up to 5 min;
- an event never waits past its maximum age: once `age >= max_age` it fails with
  `EventAgeExceeded`, whatever else was due.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

THROTTLE_BACKOFF_FIRST = 1.0
THROTTLE_BACKOFF_MAX = 300.0


class Outcome(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    THROTTLED = "throttled"     # also: the environment could not be started


class Condition(enum.StrEnum):
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass(frozen=True, slots=True)
class Retry:
    at: float            # epoch seconds when the event is due again


@dataclass(frozen=True, slots=True)
class Succeed:
    pass


@dataclass(frozen=True, slots=True)
class Fail:
    condition: Condition


Decision = Retry | Succeed | Fail


def expired(now: float, enqueued_at: float, max_age: float) -> bool:
    return now - enqueued_at >= max_age


def throttle_backoff(throttles: int) -> float:
    """Seconds to wait after the `throttles`-th consecutive throttle (1 s, 2 s, 4 s … 5 min)."""
    return min(THROTTLE_BACKOFF_MAX, THROTTLE_BACKOFF_FIRST * 2.0 ** max(0, throttles - 1))


def decide(outcome: Outcome, *, now: float, enqueued_at: float, attempts: int, throttles: int,
           retries: int, max_age: float, delays: Sequence[float]) -> Decision:
    """The next step after one attempt. `attempts` counts the function's invocations so far
    (this one included); `throttles` the consecutive throttles (this one included)."""
    if outcome is Outcome.SUCCESS:
        return Succeed()
    if outcome is Outcome.FUNCTION_ERROR:
        if attempts > retries:
            return Fail(Condition.RETRIES_EXHAUSTED)
        wait = delays[min(attempts - 1, len(delays) - 1)] if delays else 0.0
    else:
        wait = throttle_backoff(throttles)
    if expired(now, enqueued_at, max_age):
        return Fail(Condition.EVENT_AGE_EXCEEDED)
    # never later than the moment the event expires: it fails then instead of waiting on
    return Retry(at=min(now + wait, enqueued_at + max_age))
