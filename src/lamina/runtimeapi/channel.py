"""The hand-over point between an invoker and the runtime inside one environment.

One environment runs one invocation at a time. `dispatch` queues the event and hands it
to the runtime's pending `GET /next` (or to the next one that arrives); the runtime's
`POST …/response` or `…/error` resolves the returned future. Everything here runs on
the event loop thread; nothing blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

MAX_RESPONSE_BYTES = 6_291_556


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeReply:
    """What the runtime answered: a response body, or an error body with its type."""

    ok: bool
    body: bytes
    error_type: str | None = None


class NextWaiter:
    """Something that can receive an invocation as the answer to `GET /next`."""

    def deliver(self, invocation: Invocation) -> None:  # pragma: no cover - protocol
        raise NotImplementedError


class RuntimeChannel:
    """State of one environment's Runtime API, shared by its connections."""

    def __init__(self, on_next: Callable[[bool], None] | None = None,
                 on_init_error: Callable[[], None] | None = None) -> None:
        # on_next(first) is called each time the runtime parks in `GET /next`:
        # first=True the first time (init finished), later after each invocation ends.
        self._on_next = on_next
        self._on_init_error = on_init_error
        self._waiter: NextWaiter | None = None
        self._queued: Invocation | None = None
        self._current: Invocation | None = None
        self._reply: asyncio.Future[RuntimeReply] | None = None
        self._seen_next = False
        self.init_error: RuntimeReply | None = None
        self.closed = False
        self.turns = 0  # invocations started and ended and GET /next calls: the server's idle clock watches it

    # -- invoker side -----------------------------------------------------------------
    def dispatch(self, invocation: Invocation) -> asyncio.Future[RuntimeReply]:
        if self._current is not None or self.closed:
            raise RuntimeError("environment is not idle")
        self.turns += 1
        self._current = invocation
        self._reply = asyncio.get_running_loop().create_future()
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.deliver(invocation)
        else:
            self._queued = invocation
        return self._reply

    def finish(self) -> None:
        """Forget the current invocation (after its reply or its failure)."""
        self.turns += 1
        self._current = None
        self._queued = None
        self._reply = None

    def close(self) -> None:
        self.closed = True
        self._waiter = None

    @property
    def current(self) -> Invocation | None:
        return self._current

    @property
    def parked(self) -> bool:
        """True when the runtime is blocked in `GET /next`."""
        return self._waiter is not None

    # -- runtime side -------------------------------------------------------------------
    def next(self, waiter: NextWaiter) -> None:
        if self.closed:
            return
        self.turns += 1
        first = not self._seen_next
        self._seen_next = True
        if self._queued is not None:
            invocation, self._queued = self._queued, None
            waiter.deliver(invocation)
            return
        self._waiter = waiter
        if self._on_next is not None:
            self._on_next(first)

    def drop_waiter(self, waiter: NextWaiter) -> None:
        if self._waiter is waiter:
            self._waiter = None

    def reply(self, request_id: str, reply: RuntimeReply) -> bool:
        """Record the runtime's answer; False if `request_id` is not the current invocation."""
        current = self._current
        if current is None or current.request_id != request_id or self._reply is None:
            return False
        if not self._reply.done():
            self._reply.set_result(reply)
        return True

    def report_init_error(self, reply: RuntimeReply) -> None:
        self.init_error = reply
        if self._on_init_error is not None:
            self._on_init_error()

    def fail(self, reply: RuntimeReply) -> None:
        """Resolve the current invocation without the runtime (it died or timed out)."""
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(reply)
