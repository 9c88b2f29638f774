"""Warm environments of one function version, most-recently-used first.

An environment is handed out only for the configuration generation it was started for:
after a code or configuration change, older idle environments are destroyed and busy
ones are destroyed when they are given back, so a new invoke never meets old code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from lamina.sandbox.protocols import EnvState, Sandbox


class FunctionPool:
    def __init__(self) -> None:
        self._idle: list[Sandbox] = []   # MRU at the end
        self.environments: set[Sandbox] = set()

    def take(self, generation: int) -> Sandbox | None:
        """An idle environment of this generation: provisioned ones first, then the most
        recently used (so that the rest can be reaped)."""
        for env in reversed(self._idle):
            if env.provisioned and env.state is EnvState.IDLE and env.generation == generation:
                self._idle.remove(env)
                return env
        while self._idle:
            env = self._idle.pop()
            if env.state is EnvState.IDLE and env.generation == generation:
                return env
            self.discard(env)
        return None

    def add(self, env: Sandbox) -> None:
        self.environments.add(env)

    def give_back(self, env: Sandbox, current_generation: int | None) -> None:
        if env.state is EnvState.IDLE and env.generation == current_generation:
            self._idle.append(env)
        else:
            self.discard(env)

    def discard(self, env: Sandbox) -> None:
        self.environments.discard(env)
        if env in self._idle:
            self._idle.remove(env)
        env.destroy()

    def retire_older_than(self, generation: int | None) -> None:
        for env in list(self._idle):
            if env.generation != generation:
                self.discard(env)

    def reap_idle(self, idle_timeout: float, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        stale = [e for e in self._idle if not e.provisioned and now - e.last_used >= idle_timeout]
        for env in stale:
            self.discard(env)
        return len(stale)

    @property
    def idle(self) -> list[Sandbox]:
        return list(self._idle)

    def provisioned(self) -> list[Sandbox]:
        return [env for env in self.environments if env.provisioned and env.state is not EnvState.DEAD]

    def __iter__(self) -> Iterator[Sandbox]:
        return iter(list(self.environments))
