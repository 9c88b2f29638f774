"""The one owner of the server's background tasks.

Every long-lived or fire-and-forget task (the idle reaper, the asynchronous queue's
dispatcher and deliveries, settling a function after an update, filling provisioned
concurrency, starting a zygote) is started with `Supervisor.spawn`, never with a loose
`create_task`. A task that ends with an exception is a bug: the supervisor logs it with
the task's name and calls `on_crash`, which stops the server cleanly (`lamina serve` then
exits non-zero) instead of letting the failure vanish with the task. Cancellation is not
a failure. `close` cancels what is left and waits for it, bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("lamina")
T = TypeVar("T")


class Supervisor:
    def __init__(self, on_crash: Callable[[BaseException], None] | None = None) -> None:
        self.on_crash = on_crash
        self.crashed: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.error("background task %s failed; stopping the server", task.get_name(), exc_info=exc)
        if self.crashed is None:
            self.crashed = exc
            if self.on_crash is not None:
                self.on_crash(exc)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self, timeout: float = 10.0) -> None:
        """Cancel every task still running and wait (at most `timeout` s) for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
