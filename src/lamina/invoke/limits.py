"""Admission control for invocations: concurrency and burst.

Concurrency follows Lambda's account model: a function with reserved concurrency R runs
at most R invocations at once, drawing only on its reservation; every other function
shares the unreserved pool (account limit minus all reservations). Each admitted
invocation holds a `Lease` that remembers which pool it drew from, and is released
exactly once: a reservation set or removed while an invocation runs cannot make the
counts drift. New environments per function are rate-limited by a token bucket (burst,
refilled over 10 s). A request past any limit is refused at once with the throttle's
reason; nothing queues. Everything runs on the event loop thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lamina.domain.model import FunctionKey
from lamina.errors import TooManyRequestsException

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
BURST_LIMIT = "FunctionInvocationRateLimitExceeded"
BURST_WINDOW_SECONDS = 10.0


def throttled(reason: str, retry_after: int = 1) -> TooManyRequestsException:
    return TooManyRequestsException("Rate Exceeded.", extra={"Reason": reason},
                                    headers={"Retry-After": str(retry_after)})


@dataclass
class _Bucket:
    tokens: float
    stamp: float = field(default_factory=time.monotonic)


class Lease:
    """One admitted invocation's concurrency slot. `release` gives it back to the pool it was
    drawn from; only the first call counts."""

    __slots__ = ("_limiter", "key", "released", "reserved")

    def __init__(self, limiter: ConcurrencyLimiter, key: FunctionKey, reserved: bool) -> None:
        self._limiter = limiter
        self.key = key
        self.reserved = reserved  # drawn from the function's reservation, not the unreserved pool
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._limiter._give_back(self)


class ConcurrencyLimiter:
    """Counts in-flight invocations; `acquire` either admits (a `Lease`) or raises a throttle."""

    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
        self._reserved: dict[FunctionKey, int] = {}
        self._inflight: dict[FunctionKey, int] = {}
        self._unreserved_inflight = 0

    @property
    def reserved_total(self) -> int:
        return sum(self._reserved.values())

    @property
    def concurrent_executions(self) -> int:
        return sum(self._inflight.values())

    @property
    def unreserved_inflight(self) -> int:
        return self._unreserved_inflight

    def inflight(self, key: FunctionKey) -> int:
        return self._inflight.get(key, 0)

    def set_reserved(self, key: FunctionKey, reserved: int | None) -> None:
        if reserved is None:
            self._reserved.pop(key, None)
        else:
            self._reserved[key] = reserved

    def forget(self, key: FunctionKey) -> None:
        self._reserved.pop(key, None)

    def admits(self, key: FunctionKey) -> bool:
        """Whether `acquire` would admit one more invocation right now."""
        reserved = self._reserved.get(key)
        if reserved is not None:
            return self._inflight.get(key, 0) < reserved
        return self._unreserved_inflight < self.account_limit - self.reserved_total

    def acquire(self, key: FunctionKey) -> Lease:
        current = self._inflight.get(key, 0)
        reserved = self._reserved.get(key)
        if reserved is not None:
            if current >= reserved:
                raise throttled(RESERVED_LIMIT)
        else:
            if self._unreserved_inflight >= self.account_limit - self.reserved_total:
                raise throttled(ACCOUNT_LIMIT)
            self._unreserved_inflight += 1
        self._inflight[key] = current + 1
        return Lease(self, key, reserved is not None)

    def _give_back(self, lease: Lease) -> None:
        key = lease.key
        current = self._inflight.get(key, 0)
        if current <= 1:
            self._inflight.pop(key, None)
        else:
            self._inflight[key] = current - 1
        if not lease.reserved:
            self._unreserved_inflight = max(0, self._unreserved_inflight - 1)


class BurstLimiter:
    """At most `burst` new environments per function in any 10 s, refilled continuously."""

    def __init__(self, burst: int) -> None:
        self._burst = burst
        self._rate = burst / BURST_WINDOW_SECONDS
        self._buckets: dict[FunctionKey, _Bucket] = {}

    def take(self, key: FunctionKey) -> None:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            raise throttled(BURST_LIMIT, retry_after=max(1, int((1.0 - bucket.tokens) / self._rate) + 1))
        bucket.tokens -= 1.0

    def forget(self, key: FunctionKey) -> None:
        self._buckets.pop(key, None)
