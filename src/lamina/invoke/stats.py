"""Counters per function since the server started, and the invoker's status document.

The document is what `/_lamina/status` (and `lamina status`) shows per function: its
environments by state, concurrency, counters, the memory and disk its environments hold,
and its ready zygotes; then the host's capacities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lamina.domain.model import FunctionKey
from lamina.sandbox.protocols import EnvState, Sandbox


@dataclass
class FunctionStats:
    invocations: int = 0   # as Lambda's Invocations metric: throttled requests are not counted
    errors: int = 0
    throttles: int = 0
    cold_starts: int = 0
    forked_starts: int = 0  # of the cold starts, those forked from the function's zygote


class Stats:
    def __init__(self) -> None:
        self._functions: dict[FunctionKey, FunctionStats] = {}

    def of(self, key: FunctionKey) -> FunctionStats:
        stats = self._functions.get(key)
        if stats is None:
            stats = self._functions[key] = FunctionStats()
        return stats

    def forget(self, key: FunctionKey) -> None:
        self._functions.pop(key, None)

    def keys(self) -> set[FunctionKey]:
        return set(self._functions)

    def get(self, key: FunctionKey) -> FunctionStats:
        return self._functions.get(key) or FunctionStats()


def function_status(key: FunctionKey, stats: FunctionStats, environments: Iterable[Sandbox], *,
                    concurrent: int, zygotes: int, held_disk_mb: Callable[[Sandbox], int]) -> dict[str, Any]:
    counts = dict.fromkeys(("starting", "idle", "busy", "provisioned"), 0)
    memory = disk = 0
    for env in environments:
        state = "provisioned" if env.provisioned and env.state is EnvState.IDLE else env.state.value
        if state in counts:
            counts[state] += 1
            memory += env.memory_mb
            disk += held_disk_mb(env)
    return {
        "environments": counts, "concurrent_executions": concurrent,
        "invocations": stats.invocations, "errors": stats.errors, "throttles": stats.throttles,
        "cold_starts": stats.cold_starts, "forked_starts": stats.forked_starts, "memory_mb": memory,
        "disk_mb": disk, "zygotes": zygotes,
    }
