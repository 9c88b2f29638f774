"""Placement: which environment serves an invocation, and starting new ones.

Environments serve one function version and one configuration generation; they are kept
per version in a `FunctionPool`. An invocation takes a warm environment of its generation
when there is one, else a new one is started, within the function's burst limit and the
host's capacity (idle environments of other functions are evicted, least recently used
first, to make room). Each environment holds its `Reservation` from the moment its start is
decided until it ends. Idle environments are reaped after the idle timeout. Runs on the
event loop thread; blocking work (the code's tree) goes to the executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from lamina.domain.model import FunctionConfig, FunctionKey, UpdateRuntimeOn, VersionKey
from lamina.errors import ImageBuildError, ServiceException, TooManyRequestsException
from lamina.invoke.capacity import HostCapacity, Reservation
from lamina.invoke.launch import sandbox_request
from lamina.invoke.limits import ACCOUNT_LIMIT, BurstLimiter, throttled
from lamina.invoke.pool import FunctionPool
from lamina.invoke.stats import FunctionStats, Stats
from lamina.observe.logs import LogSink
from lamina.runtimes.catalog import RuntimeCatalog, RuntimeLaunch
from lamina.runtimes.versions import runtime_version_arn
from lamina.sandbox.protocols import Sandbox, SandboxProvider
from lamina.settings import Settings

log = logging.getLogger("lamina.invoke")


class Placement:
    def __init__(self, settings: Settings, catalog: RuntimeCatalog, logs: LogSink, sandboxes: SandboxProvider,
                 capacity: HostCapacity, stats: Stats, code_dir: Callable[[FunctionConfig], Path],
                 opt_dir: Callable[[FunctionConfig], Path | None]) -> None:
        self._settings = settings
        self._catalog = catalog
        self._logs = logs
        self._sandboxes = sandboxes
        self._capacity = capacity
        self._stats = stats
        self._code_dir = code_dir
        self._opt_dir = opt_dir
        self._burst = BurstLimiter(settings.burst_limit)
        self._pools: dict[VersionKey, FunctionPool] = {}
        self._generations: dict[VersionKey, int] = {}  # the newest generation each version serves
        # a provisioned environment ended (timeout, crash): its owner replaces it
        self.on_provisioned_dead: Callable[[VersionKey], None] = lambda _key: None

    # -- pools ------------------------------------------------------------------------------
    def pool(self, key: VersionKey) -> FunctionPool:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = FunctionPool()
        return pool

    def existing(self, key: VersionKey) -> FunctionPool | None:
        return self._pools.get(key)

    def serving(self, cfg: FunctionConfig, key: VersionKey) -> FunctionPool:
        """The pool of `cfg`'s version (`key`), which serves `cfg`'s generation from now on (or a newer one)."""
        if self._generations.get(key, 0) < cfg.generation:
            self._generations[key] = cfg.generation
        return self.pool(key)

    def generation(self, key: VersionKey) -> int | None:
        return self._generations.get(key)

    def adopt(self, cfg: FunctionConfig) -> FunctionPool:
        """The pool of `cfg`'s version, serving `cfg`'s generation unless it serves one already."""
        self._generations.setdefault(cfg.version_key, cfg.generation)
        return self.pool(cfg.version_key)

    def function_changed(self, cfg: FunctionConfig) -> None:
        """Environments of older generations stop serving; so does the version's zygote."""
        key = cfg.version_key
        self._generations[key] = cfg.generation
        pool = self._pools.get(key)
        if pool is not None:
            pool.retire_older_than(cfg.generation)
        self._sandboxes.retire(key, cfg.generation)

    def drop(self, key: VersionKey) -> None:
        self._generations.pop(key, None)
        pool = self._pools.pop(key, None)
        if pool is not None:
            for env in pool:
                pool.discard(env)
        self._sandboxes.retire(key)

    def versions_of(self, function: FunctionKey) -> list[VersionKey]:
        return [key for key in self._pools if key.function == function]

    def functions(self) -> set[FunctionKey]:
        return {key.function for key in self._pools}

    def environments(self, function: FunctionKey) -> Iterator[Sandbox]:
        return (env for key, pool in self._pools.items() if key.function == function for env in pool)

    def forget(self, function: FunctionKey) -> None:
        self._burst.forget(function)

    # -- placing an invocation -----------------------------------------------------------------
    async def acquire(self, cfg: FunctionConfig, pool: FunctionPool, stats: FunctionStats) -> Sandbox:
        """A warm environment of this generation if there is one, else a new one."""
        while True:
            env = pool.take(cfg.generation)
            if env is None:
                break
            # a warm environment serves only once its runtime is back in GET /next
            if await env.wait_until_parked(float(cfg.timeout)):
                return env
            pool.discard(env)
        try:
            self._burst.take(cfg.key)
            reservation = self.reserve(cfg)
            if reservation is None:
                # AWS has no throttle reason for a host out of room; this is the account's
                # concurrency running out, as with memory
                raise throttled(ACCOUNT_LIMIT)
        except TooManyRequestsException:
            stats.throttles += 1
            raise
        stats.cold_starts += 1
        return await self.start(cfg, pool, reservation)

    def give_back(self, key: VersionKey, pool: FunctionPool, env: Sandbox) -> None:
        pool.give_back(env, self._generations.get(key))

    # -- capacity ---------------------------------------------------------------------------------
    def reserve(self, cfg: FunctionConfig) -> Reservation | None:
        """Reserve room for one new environment of `cfg` now (before any await), evicting idle
        environments for it; None when there is no room."""
        need = self._capacity.needs(cfg, self._sandboxes.tmp_on_disk)
        if not self._capacity.fits(need):
            self._evict_idle(need)
            if not self._capacity.fits(need):
                return None
        return self._capacity.reserve(need)

    def _evict_idle(self, need: Reservation) -> None:
        """Destroy idle environments, least recently used first, until `need` fits; none when
        even all of them would not make room (the request is throttled anyway)."""
        idle = sorted(((env, pool) for pool in self._pools.values() for env in pool.idle if not env.provisioned),
                      key=lambda pair: pair[0].last_used)
        if not self._capacity.fits_without(need, (env for env, _pool in idle)):
            return
        for env, pool in idle:
            if self._capacity.fits(need):
                return
            pool.discard(env)  # it ends at once, and what it held is free

    # -- starting ---------------------------------------------------------------------------------
    async def start(self, cfg: FunctionConfig, pool: FunctionPool, reservation: Reservation) -> Sandbox:
        """Start an environment holding `reservation` (taken by `reserve`): the environment
        gives it back when it ends; until there is one, a failure here does."""
        launch = await self._launch(cfg)
        # taken before any await: if the function is deleted meanwhile, this log is the removed one
        # and what the environment writes is dropped, not left behind for a function of that name
        function_log = self._logs.open(cfg.region, cfg.name)
        key = cfg.version_key
        try:
            code_dir, opt_dir, bytecode = await self._trees(cfg)
            request, refusal = sandbox_request(cfg, launch, code_dir, opt_dir, uuid.uuid4().hex, bytecode)
            sandbox = await self._sandboxes.create(request, log=function_log.write,
                                                   on_dead=lambda: self._ended(key, sandbox))
            try:
                reservation = self._capacity.settle_tmp(reservation, sandbox.tmp_on_disk)
            except TooManyRequestsException:
                sandbox.destroy()
                raise
        except BaseException:
            self._capacity.release(reservation)
            raise
        self._capacity.hold(sandbox, reservation)
        pool.add(sandbox)
        if refusal is not None:
            await sandbox.fail_start(refusal)
            return sandbox
        scaling_out = any(other is not sandbox and other.generation == cfg.generation for other in pool)
        await sandbox.start(fork=self._forks(scaling_out))
        if sandbox.forked:
            self._stats.of(cfg.key).forked_starts += 1
        return sandbox

    async def _launch(self, cfg: FunctionConfig) -> RuntimeLaunch | None:
        """How the function's runtime starts; its image is built here only if it went missing
        since the function settled (removed by hand): settling builds it."""
        runtime = cfg.runtime or ""
        pin = cfg.runtime_version_arn if cfg.runtime_update_on is not UpdateRuntimeOn.AUTO else None
        if pin is not None and pin != runtime_version_arn(cfg.region, runtime, self._catalog.image_digest(runtime)):
            # pinned (Manual, or FunctionUpdate since its last update) to an image older than the current
            pinned = await asyncio.get_running_loop().run_in_executor(
                None, self._catalog.pinned, runtime, cfg.region, pin)
            if pinned is not None:
                return pinned
            log.warning("%s is pinned to runtime version %s, which is not on this host any more (removed "
                        "by hand); it runs on the current one", cfg.qualified_arn, pin)
        launch = self._catalog.get(runtime)
        if launch is None and self._catalog.plan(runtime) is not None:
            try:
                launch = await asyncio.get_running_loop().run_in_executor(None, self._catalog.prepare, runtime)
            except ImageBuildError as exc:
                log.error("the %s image of %s cannot be built: %s", runtime, cfg.qualified_arn, exc)
                raise ServiceException(f"The {runtime} runtime is not available on this Lamina host: {exc}") from exc
        return launch

    async def _trees(self, cfg: FunctionConfig) -> tuple[Path, Path | None, tuple[tuple[str, str], ...]]:
        """The function's code and merged layers on the host (built once, off the loop), and
        their compiled bytecode when there is some (`lamina.runtimes.bytecode`)."""
        loop = asyncio.get_running_loop()
        try:
            code_dir = await loop.run_in_executor(None, self._code_dir, cfg)
            opt_dir = await loop.run_in_executor(None, self._opt_dir, cfg) if cfg.layers else None
        except (OSError, KeyError, ValueError) as exc:  # the blob store's failures: no environment can start
            log.error("could not prepare the code of %s", cfg.qualified_arn, exc_info=exc)
            raise ServiceException("Internal error") from exc
        trees = [(code_dir, "/var/task")] + ([(opt_dir, "/opt")] if opt_dir is not None else [])
        bytecode = await loop.run_in_executor(None, self._catalog.bytecode_binds, cfg.runtime or "", trees)
        return code_dir, opt_dir, bytecode

    def _forks(self, scaling_out: bool) -> bool:
        """Whether a new environment forks from its version's zygote: when the function scales
        out (another environment of its configuration exists) or, with "always", from its
        first environment on."""
        mode = self._settings.fork_starts
        return mode == "always" or (mode == "scale-out" and scaling_out)

    def _ended(self, key: VersionKey, sandbox: Sandbox) -> None:
        self._capacity.drop(sandbox)
        if sandbox.provisioned:
            self.on_provisioned_dead(key)

    # -- reaping ----------------------------------------------------------------------------------
    async def reap_forever(self) -> None:
        idle_timeout = self._settings.idle_timeout
        interval = max(0.2, min(5.0, idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for pool in list(self._pools.values()):
                pool.reap_idle(idle_timeout)
            self._sandboxes.reap(time.monotonic() - idle_timeout)

    def close(self) -> None:
        for pool in self._pools.values():
            for env in pool:
                pool.discard(env)
        self._pools.clear()
