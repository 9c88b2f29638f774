"""Provisioned concurrency: environments of published versions kept initialised and warm.

For each version with a request, one supervised task at a time starts the environments
missing (and replaces one that died: a timeout or crash ends it). Environments beyond a
lowered request become ordinary ones, reaped when idle. Provisioned environments are taken
first, never reaped or evicted, and their first invocation reports no Init Duration. A fill
that meets no capacity stops with a warning; the next change or death starts it again.
"""

from __future__ import annotations

import asyncio
import logging

from lamina.domain.model import FunctionConfig, VersionKey
from lamina.errors import ServiceException, TooManyRequestsException
from lamina.invoke.placement import Placement
from lamina.sandbox.protocols import EnvState
from lamina.tasks import Supervisor

log = logging.getLogger("lamina.invoke")


class ProvisionedConcurrency:
    def __init__(self, placement: Placement, supervisor: Supervisor) -> None:
        self._placement = placement
        self._supervisor = supervisor
        self._wanted: dict[VersionKey, tuple[FunctionConfig, int]] = {}
        self._filling: dict[VersionKey, asyncio.Task[None]] = {}

    def provision(self, cfg: FunctionConfig, requested: int) -> None:
        key = cfg.version_key
        self._wanted[key] = (cfg, requested)
        pool = self._placement.adopt(cfg)
        for env in pool.provisioned()[requested:]:  # fewer wanted: they become ordinary environments
            env.mark_provisioned(False)
        if requested == 0:
            self._wanted.pop(key, None)
        self.fill(key)

    def available(self, cfg: FunctionConfig) -> int:
        pool = self._placement.existing(cfg.version_key)
        return 0 if pool is None else sum(1 for env in pool.provisioned() if env.state is not EnvState.STARTING)

    def fill(self, key: VersionKey) -> None:
        """Start what is missing, unless a fill of this version is running already."""
        if key in self._filling or key not in self._wanted:
            return
        task = self._supervisor.spawn(self._fill(key), name=f"provisioned concurrency of {key.name}:{key.version}")
        self._filling[key] = task
        task.add_done_callback(lambda _t: self._filling.pop(key, None))

    def forget(self, key: VersionKey) -> None:
        self._wanted.pop(key, None)

    def close(self) -> None:
        self._wanted.clear()
        for task in list(self._filling.values()):
            task.cancel()

    async def _fill(self, key: VersionKey) -> None:
        while key in self._wanted:
            cfg, requested = self._wanted[key]
            pool = self._placement.pool(key)
            if requested - len(pool.provisioned()) <= 0:
                return
            reservation = self._placement.reserve(cfg)
            if reservation is None:
                log.warning("no memory or disk capacity left for provisioned concurrency of %s", cfg.qualified_arn)
                return
            try:
                env = await self._placement.start(cfg, pool, reservation)
            except TooManyRequestsException:
                log.warning("no memory capacity left for a /tmp of provisioned concurrency of %s", cfg.qualified_arn)
                return
            except ServiceException:  # its code could not be prepared (logged where it failed)
                return
            if env.state is EnvState.IDLE:
                env.mark_provisioned()
                pool.give_back(env, self._placement.generation(key))
            else:
                pool.discard(env)
                log.warning("a provisioned environment of %s failed its init", cfg.qualified_arn)
                return
