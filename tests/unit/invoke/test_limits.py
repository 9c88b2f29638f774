"""Concurrency leases: each is released exactly once, to the pool it was drawn from."""

from __future__ import annotations

import pytest

from lamina.domain.model import FunctionKey
from lamina.errors import TooManyRequestsException
from lamina.invoke.limits import ACCOUNT_LIMIT, RESERVED_LIMIT, ConcurrencyLimiter

A = FunctionKey("000000000000", "us-east-1", "a")
B = FunctionKey("000000000000", "us-east-1", "b")


def _reason(exc: pytest.ExceptionInfo[TooManyRequestsException]) -> str:
    return str(exc.value.extra["Reason"])


def test_a_reservation_set_while_an_invocation_runs_does_not_leak_unreserved_concurrency() -> None:
    limiter = ConcurrencyLimiter(2)
    lease = limiter.acquire(A)           # drawn from the unreserved pool (2 - 0)
    limiter.set_reserved(A, 1)           # PutFunctionConcurrency while it runs: unreserved is 2 - 1
    lease.release()
    assert limiter.unreserved_inflight == 0
    assert limiter.concurrent_executions == 0
    limiter.acquire(B)                   # the one unreserved slot is free again
    with pytest.raises(TooManyRequestsException) as exc:
        limiter.acquire(B)
    assert _reason(exc) == ACCOUNT_LIMIT


def test_a_reservation_removed_while_an_invocation_runs_leaves_the_unreserved_pool_alone() -> None:
    limiter = ConcurrencyLimiter(3)
    limiter.set_reserved(A, 1)
    lease = limiter.acquire(A)           # drawn from A's reservation
    limiter.set_reserved(A, None)        # DeleteFunctionConcurrency while it runs
    lease.release()
    assert limiter.unreserved_inflight == 0
    for _ in range(3):
        limiter.acquire(B)


def test_a_lease_is_released_once_however_often_it_is_given_back() -> None:
    limiter = ConcurrencyLimiter(2)
    first, second = limiter.acquire(A), limiter.acquire(A)
    first.release()
    first.release()
    assert limiter.inflight(A) == 1 and limiter.unreserved_inflight == 1
    second.release()
    assert limiter.inflight(A) == 0 and limiter.unreserved_inflight == 0


def test_reserved_concurrency_is_its_own_limit() -> None:
    limiter = ConcurrencyLimiter(10)
    limiter.set_reserved(A, 1)
    limiter.acquire(A)
    assert not limiter.admits(A)
    with pytest.raises(TooManyRequestsException) as exc:
        limiter.acquire(A)
    assert _reason(exc) == RESERVED_LIMIT
    assert limiter.admits(B)
