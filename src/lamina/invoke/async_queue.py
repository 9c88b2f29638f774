"""Asynchronous invocation: accept durably, deliver at least once, retry, then route the outcome.

`accept` returns only once the event's row is committed (group commit: every event that
arrives while a transaction runs goes into the next one, so the rate of acknowledged
events is not bounded by the disk's sync rate). A dispatcher hands due events to at most
`async_consumers` deliveries at once; each takes its function's concurrency slot before
it runs (`Invoker.try_admit`), so a function at its limit keeps its events queued instead
of being throttled, and they wait until they expire. Retries, backoff and expiry follow
`retry_policy`. The outcome goes to the configured destination (another function's queue
or an SQS queue) and the dead-letter queue in the same transaction that deletes the event.
The dispatcher and every delivery are supervised tasks: a bug in them stops the server
rather than turning into a throttle that is retried for six hours.

Single process: which events are in flight is known in memory; after a restart every row
still in the store is delivered again (a duplicate is possible, a loss is not).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from lamina.control.event_config import DEFAULT_MAX_AGE, DEFAULT_RETRIES, EventInvokeConfigService
from lamina.control.functions import FunctionService
from lamina.domain.arns import parse_arn
from lamina.domain.model import LATEST, EventInvokeSetting, FunctionConfig, FunctionKey
from lamina.domain.names import FunctionRef
from lamina.errors import ResourceNotFoundException, ServiceException, TooManyRequestsException
from lamina.invoke.destinations import (
    DeliveryError,
    SqsSender,
    dead_letter_attributes,
    invocation_record,
    result_document,
)
from lamina.invoke.invoker import Invoker
from lamina.invoke.limits import Lease
from lamina.invoke.queue_writer import QueueStoreError, QueueWriter
from lamina.invoke.retry_policy import Condition, Fail, Outcome, Retry, decide, expired, throttle_backoff
from lamina.settings import Settings
from lamina.store.events import INVOKE, SQS, Delete, Insert, QueuedEvent, Reschedule, SqlEventStore
from lamina.tasks import Supervisor

log = logging.getLogger("lamina.async")

# payloads of queued events kept in memory (the rest are read back from the store on delivery)
PAYLOAD_BUDGET_BYTES = 64 * 1024 * 1024
UNPARK_INTERVAL = 1.0


@dataclass
class AsyncStats:
    """Counters since the server started."""

    accepted: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0          # retries exhausted or too old
    dead_lettered: int = 0   # of the failed: sent to an OnFailure destination or a dead-letter queue
    throttled: int = 0
    dropped: int = 0         # the function was deleted before its events ran


class AsyncQueue:
    def __init__(self, settings: Settings, store: SqlEventStore, functions: FunctionService,
                 event_config: EventInvokeConfigService, invoker: Invoker, supervisor: Supervisor) -> None:
        self._settings = settings
        self._store = store
        self._functions = functions
        self._event_config = event_config
        self._invoker = invoker
        self._supervisor = supervisor
        self._sqs = SqsSender(settings.sqs_endpoint) if settings.sqs_endpoint else None
        self._writer = QueueWriter(store)
        self._heap: list[tuple[float, int, QueuedEvent]] = []
        self._seq = itertools.count()
        self._parked: dict[FunctionKey, collections.deque[QueuedEvent]] = {}
        self._in_flight: dict[str, QueuedEvent] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats: dict[FunctionKey, AsyncStats] = {}
        self._held_bytes = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._next_unpark = 0.0
        self.sqs_sent = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        pending = await loop.run_in_executor(None, self._store.pending)
        self._writer.start()
        for event in pending:
            self._schedule(event)
        if pending:
            log.info("%d asynchronous events recovered from the store", len(pending))
        self._dispatcher = self._supervisor.spawn(self._dispatch_forever(), name="asynchronous dispatcher")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)

    # -- accepting ----------------------------------------------------------------------------
    async def accept(self, ref: FunctionRef, payload: bytes, *, request_id: str,
                     client_context: str | None) -> None:
        """Queue one event for `ref` (qualifier as invoked); returns once it is durable."""
        now = time.time()
        event = QueuedEvent(id=request_id, kind=INVOKE, account_id=ref.account_id, region=ref.region,
                            name=ref.name, qualifier=ref.qualifier, enqueued_at=now, next_at=now,
                            client_context=client_context, payload=payload)
        await self._writer.submit([Insert(event)])
        self._stats_for(_key(event)).accepted += 1
        self._schedule(event)

    # -- scheduling ---------------------------------------------------------------------------
    def _schedule(self, event: QueuedEvent) -> None:
        if event.payload is not None:
            if self._held_bytes + len(event.payload) <= PAYLOAD_BUDGET_BYTES:
                self._held_bytes += len(event.payload)
            else:
                event.payload = None
        heapq.heappush(self._heap, (event.next_at, next(self._seq), event))
        self._wake.set()

    def _forget_payload(self, event: QueuedEvent) -> None:
        if event.payload is not None:
            self._held_bytes -= len(event.payload)
            event.payload = None

    async def _payload(self, event: QueuedEvent) -> bytes | None:
        if event.payload is not None:
            return event.payload
        try:
            found = await asyncio.get_running_loop().run_in_executor(None, self._store.payloads, [event.id])
        except Exception as exc:  # the store's boundary (it names no error types): translated once, here
            raise QueueStoreError(f"could not read the payload of {event.id}: {exc}") from exc
        return found.get(event.id)

    def _unpark(self) -> None:
        """Every parked event back in line (limits may have changed; events may have expired)."""
        for events in self._parked.values():
            for event in events:
                heapq.heappush(self._heap, (event.next_at, next(self._seq), event))
        self._parked.clear()
        self._wake.set()

    def _unpark_one(self, key: FunctionKey) -> None:
        """A slot of this function was given back: its longest-parked event goes next."""
        events = self._parked.get(key)
        if events:
            event = events.popleft()
            if not events:
                del self._parked[key]
            heapq.heappush(self._heap, (event.next_at, next(self._seq), event))

    async def _dispatch_forever(self) -> None:
        while True:
            self._wake.clear()
            self._dispatch_due()
            timeout = UNPARK_INTERVAL
            if self._heap and len(self._tasks) < self._settings.async_consumers:
                timeout = max(0.0, min(timeout, self._heap[0][0] - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch_due(self) -> None:
        now = time.time()
        if now >= self._next_unpark:
            self._next_unpark = now + UNPARK_INTERVAL
            self._unpark()
        while self._heap and self._heap[0][0] <= now and len(self._tasks) < self._settings.async_consumers:
            _at, _seq, event = heapq.heappop(self._heap)
            if event.kind == SQS:
                self._start(event, partial(self._send_sqs, event))
                continue
            ref = FunctionRef(event.account_id, event.region, event.name, event.qualifier)
            try:
                latest = self._functions.latest(ref)
                cfg = self._functions.route(ref)
            except ResourceNotFoundException:
                self._start(event, partial(self._drop, event))
                continue
            setting = self._event_config.effective(latest, event.qualifier)
            lease: Lease | None = None
            if expired(now, event.enqueued_at, _max_age(setting)):
                self._start(event, partial(self._finish, event, cfg, setting, Condition.EVENT_AGE_EXCEEDED))
            elif not cfg.ready or (lease := self._invoker.try_admit(cfg)) is None:
                self._parked.setdefault(_key(event), collections.deque()).append(event)
            else:
                self._start(event, partial(self._deliver, event, cfg, setting, lease))

    def _start(self, event: QueuedEvent, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._in_flight[event.id] = event
        task = self._supervisor.spawn(self._run(event, work), name=f"asynchronous event {event.id}")
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._in_flight.pop(event.id, None)
            if event.kind == INVOKE:
                self._unpark_one(_key(event))
            self._wake.set()

        task.add_done_callback(done)

    @staticmethod
    async def _run(event: QueuedEvent, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await work()
        except QueueStoreError:
            # the store failed, not the delivery: the event's row is still there, and it is
            # delivered again after a restart (a duplicate is possible, a loss is not)
            log.error("could not record the progress of asynchronous event %s", event.id, exc_info=True)

    # -- delivery -------------------------------------------------------------------------------
    async def _deliver(self, event: QueuedEvent, cfg: FunctionConfig, setting: EventInvokeSetting | None,
                       lease: Lease) -> None:
        stats = self._stats_for(_key(event))
        try:
            payload = await self._payload(event)
            if payload is None:  # the row is gone (cannot happen while it is in flight)
                return
            ref = FunctionRef(event.account_id, event.region, event.name, event.qualifier)
            result = await self._invoker.invoke(cfg, payload, request_id=event.id, invoked_arn=ref.arn,
                                                client_context=event.client_context, admission=lease)
        except (TooManyRequestsException, ServiceException, QueueStoreError) as exc:
            # not a function error: throttled, no environment could be started, or the payload
            # could not be read; the event goes back on the queue with backoff
            if not isinstance(exc, TooManyRequestsException):
                log.warning("an asynchronous invocation of %s could not run: %s", cfg.qualified_arn, exc)
            outcome = Outcome.THROTTLED
        else:
            outcome = Outcome.SUCCESS if result.function_error is None else Outcome.FUNCTION_ERROR
            event.attempts += 1
            event.throttles = 0
            event.last_result = result_document(200, result.executed_version, result.function_error,
                                                result.payload)
        finally:
            lease.release()  # a no-op once invoke has released it
        if outcome is Outcome.THROTTLED:
            event.throttles += 1
            stats.throttled += 1
        decision = decide(outcome, now=time.time(), enqueued_at=event.enqueued_at, attempts=event.attempts,
                          throttles=event.throttles, retries=_retries(setting), max_age=_max_age(setting),
                          delays=self._settings.async_retry_delays)
        if isinstance(decision, Retry):
            event.next_at = decision.at
            if outcome is Outcome.FUNCTION_ERROR:  # throttles change nothing worth a write
                await self._writer.submit([Reschedule(event.id, event.next_at, event.attempts, event.last_result)])
                stats.retried += 1
            self._schedule(event)
            return
        condition = decision.condition if isinstance(decision, Fail) else None
        await self._finish(event, cfg, setting, condition)

    async def _finish(self, event: QueuedEvent, cfg: FunctionConfig, setting: EventInvokeSetting | None,
                      condition: Condition | None) -> None:
        """Success (condition None) or failure: route the record, delete the event, atomically."""
        stats = self._stats_for(_key(event))
        payload = await self._payload(event)
        now = time.time()
        follow: list[QueuedEvent] = []
        target = (setting.on_success if condition is None else setting.on_failure) if setting else None
        if target and payload is not None:
            record = invocation_record(
                request_id=event.id, function_arn=f"{cfg.arn}:{event.qualifier or LATEST}",
                condition=condition.value if condition else "Success", invoke_count=event.attempts,
                request_payload=payload, result=event.last_result, now=now)
            follow.append(_destination_event(target, json.dumps(record).encode(), now))
        if condition is not None and cfg.dead_letter_arn and payload is not None:
            dlq = _destination_event(cfg.dead_letter_arn, payload, now)
            dlq.attributes = dead_letter_attributes(event.id, event.last_result)
            follow.append(dlq)
        await self._writer.submit([Delete(event.id), *(Insert(f) for f in follow)])
        self._forget_payload(event)
        if condition is None:
            stats.succeeded += 1
        else:
            stats.failed += 1
            if follow:
                stats.dead_lettered += 1
            else:
                log.warning("asynchronous event %s of %s failed (%s) with no destination or dead-letter queue",
                            event.id, cfg.qualified_arn, condition.value)
        for item in follow:
            self._schedule(item)

    async def _drop(self, event: QueuedEvent) -> None:
        await self._writer.submit([Delete(event.id)])
        self._forget_payload(event)
        self._stats_for(_key(event)).dropped += 1
        log.warning("dropped asynchronous event %s: function %s no longer exists", event.id, event.name)

    async def _send_sqs(self, event: QueuedEvent) -> None:
        payload = await self._payload(event)
        if payload is None:
            return
        try:
            if self._sqs is None:
                raise DeliveryError("no SQS endpoint is configured (LAMINA_SQS_ENDPOINT)")
            assert event.target is not None
            await asyncio.get_running_loop().run_in_executor(
                None, self._sqs.send, event.target, payload.decode("utf-8", "replace"), event.attributes)
        except DeliveryError as exc:
            event.throttles += 1
            now = time.time()
            if expired(now, event.enqueued_at, DEFAULT_MAX_AGE):
                log.error("gave up sending a message to %s after %d tries: %s", event.target, event.throttles, exc)
                await self._writer.submit([Delete(event.id)])
                self._forget_payload(event)
                return
            log.warning("could not send a message to %s (retrying): %s", event.target, exc)
            event.next_at = now + throttle_backoff(event.throttles)
            self._schedule(event)
            return
        await self._writer.submit([Delete(event.id)])
        self._forget_payload(event)
        self.sqs_sent += 1

    # -- introspection ------------------------------------------------------------------------
    def _stats_for(self, key: FunctionKey) -> AsyncStats:
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = AsyncStats()
        return stats

    def forget(self, account: str, region: str, name: str) -> None:
        self._stats.pop(FunctionKey(account, region, name), None)

    def status(self) -> dict[str, Any]:
        now = time.time()
        queued: dict[FunctionKey, int] = {}
        oldest: dict[FunctionKey, float] = {}
        waiting = [e for _a, _s, e in self._heap] + [e for events in self._parked.values() for e in events]
        for event in waiting:
            if event.kind == INVOKE:
                queued[_key(event)] = queued.get(_key(event), 0) + 1
        in_flight: dict[FunctionKey, int] = {}
        for event in self._in_flight.values():
            if event.kind == INVOKE:
                in_flight[_key(event)] = in_flight.get(_key(event), 0) + 1
        for event in [*waiting, *self._in_flight.values()]:
            if event.kind == INVOKE:
                key = _key(event)
                oldest[key] = min(oldest.get(key, event.enqueued_at), event.enqueued_at)
        functions: dict[str, Any] = {}
        for key in sorted(set(self._stats) | set(queued) | set(in_flight)):
            stats = self._stats.get(key, AsyncStats())
            functions[f"{key[1]}/{key[2]}"] = {
                "queued": queued.get(key, 0), "in_flight": in_flight.get(key, 0),
                "oldest_event_age_s": round(now - oldest[key], 3) if key in oldest else None,
                **stats.__dict__,
            }
        outbound = sum(1 for e in [*waiting, *self._in_flight.values()] if e.kind == SQS)
        return {"functions": functions, "sqs_pending": outbound, "sqs_sent": self.sqs_sent}


def _key(event: QueuedEvent) -> FunctionKey:
    return FunctionKey(event.account_id, event.region, event.name)


def _retries(setting: EventInvokeSetting | None) -> int:
    if setting is None or setting.maximum_retry_attempts is None:
        return DEFAULT_RETRIES
    return setting.maximum_retry_attempts


def _max_age(setting: EventInvokeSetting | None) -> float:
    if setting is None or setting.maximum_event_age is None:
        return float(DEFAULT_MAX_AGE)
    return float(setting.maximum_event_age)


def _destination_event(arn: str, payload: bytes, now: float) -> QueuedEvent:
    """The queued work that delivers `payload` to a function (asynchronously) or an SQS queue."""
    parsed = parse_arn(arn)
    assert parsed is not None  # destinations were validated when they were configured
    if parsed.service == "sqs":
        return QueuedEvent(id=str(uuid.uuid4()), kind=SQS, account_id=parsed.account, region=parsed.region,
                           name="", qualifier=None, target=arn, enqueued_at=now, next_at=now, payload=payload)
    return QueuedEvent(id=str(uuid.uuid4()), kind=INVOKE, account_id=parsed.account, region=parsed.region,
                       name=parsed.name or "", qualifier=parsed.qualifier, enqueued_at=now, next_at=now,
                       payload=payload)
