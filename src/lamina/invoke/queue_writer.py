"""The asynchronous queue's writer: one thread that commits queue operations in batches.

Group commit: every submission that arrives while a transaction runs goes into the next
one, so the rate of acknowledged events is not bounded by the disk's sync rate. A batch
that fails is retried one submission at a time, so that one bad submission fails alone.
Each submission's future settles on its own event loop once its operations are durable,
or with `QueueStoreError` (the store's own error attached) when they could not be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence

from lamina.errors import LaminaError
from lamina.store.events import Op, SqlEventStore

log = logging.getLogger("lamina.async")


class QueueStoreError(LaminaError):
    """The event store could not read or write (the store's own error is the cause)."""


class QueueWriter:
    def __init__(self, store: SqlEventStore) -> None:
        self._store = store
        self._pending: list[tuple[Sequence[Op], asyncio.Future[None], asyncio.AbstractEventLoop]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lamina-async-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, ops: Sequence[Op]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cv:
            if self._closed:
                raise QueueStoreError("the event queue is closed")
            self._pending.append((ops, future, loop))
            self._cv.notify()
        return future

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            outcomes: list[QueueStoreError | None]
            try:
                self._store.apply([op for ops, _f, _l in batch for op in ops])
                outcomes = [None] * len(batch)
            except Exception:  # the store's boundary (it names no error types): retried one by one below
                outcomes = [self._apply_alone(ops) for ops, _f, _l in batch]
            for (_ops, future, loop), error in zip(batch, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, future, error)

    def _apply_alone(self, ops: Sequence[Op]) -> QueueStoreError | None:
        try:
            self._store.apply(ops)
        except Exception as exc:  # the store's boundary: whatever it raised goes to the submitter
            log.exception("could not write to the event queue")
            error = QueueStoreError(f"could not write to the event queue: {exc}")
            error.__cause__ = exc
            return error
        return None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
