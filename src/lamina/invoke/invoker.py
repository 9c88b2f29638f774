"""The invoke path: pick (or start) an environment, run the event, render nothing.

`Invoker.invoke` is the one entry point. It never raises for function failures; those
come back in `InvokeResult`. Concurrent invokes of one function each get an environment
of their own, started as needed. Each environment holds a `Reservation` of the host's
memory and disk (its /tmp) from the moment its start is decided until it ends; a start
that does not fit evicts idle environments or is throttled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lamina.domain.model import FunctionConfig
from lamina.errors import TooManyRequestsException
from lamina.invoke.limits import ACCOUNT_LIMIT, BurstLimiter, Capacity, ConcurrencyLimiter, Reservation, throttled
from lamina.invoke.pool import FunctionKey, FunctionPool, PoolKey
from lamina.observe.logs import LogSink, tail
from lamina.runtimeapi.channel import Invocation, RuntimeReply
from lamina.runtimes.catalog import RuntimeCatalog, RuntimeLaunch
from lamina.sandbox import cgroups
from lamina.sandbox.cgroups import limits_for
from lamina.sandbox.environment import Environment, EnvState
from lamina.sandbox.linux import SandboxSpec
from lamina.sandbox.scratch import Scratch, ScratchPool
from lamina.sandbox.zygote import Zygote, ZygoteState
from lamina.settings import Settings

log = logging.getLogger("lamina.invoke")


@dataclass(frozen=True, slots=True)
class InvokeResult:
    payload: bytes
    function_error: str | None      # "Unhandled" when the function failed
    error_type: str | None          # the wire error type (Runtime.ExitError, Sandbox.Timedout, …)
    log_result: str | None          # base64 of the log tail when asked for
    executed_version: str
    request_id: str
    duration_ms: float
    init_duration_ms: float | None


@dataclass
class FunctionStats:
    """Counters since the server started."""

    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    cold_starts: int = 0
    forked_starts: int = 0  # of the cold starts, those forked from the function's zygote


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class Invoker:
    def __init__(self, settings: Settings, catalog: RuntimeCatalog, logs: LogSink,
                 code_dir: Callable[[FunctionConfig], Path],
                 opt_dir: Callable[[FunctionConfig], Path | None] = lambda _cfg: None) -> None:
        self._settings = settings
        self._catalog = catalog
        self._logs = logs
        self._code_dir = code_dir
        self._opt_dir = opt_dir
        # environments serve one version: pools and generations are per (function, version)
        self._pools: dict[PoolKey, FunctionPool] = {}
        self._generations: dict[PoolKey, int] = {}
        self._cgroup_base = f"lamina/{os.getpid()}"
        self._reaper: asyncio.Task[None] | None = None
        self._scratch = ScratchPool(settings.data_dir.resolve() / "scratch",
                                    owner=(settings.sandbox_uid, settings.sandbox_gid))
        self._limiter = ConcurrencyLimiter(settings.effective_concurrency_limit)
        self._burst = BurstLimiter(settings.burst_limit)
        self._capacity = Capacity(settings.effective_capacity_mb)
        self._disk = Capacity(settings.effective_disk_capacity_mb())
        self._held: dict[Environment, Reservation] = {}  # what each live environment holds
        self._stats: dict[FunctionKey, FunctionStats] = {}
        self._provisioned: dict[PoolKey, tuple[FunctionConfig, int]] = {}
        self._provisioning: dict[PoolKey, asyncio.Task[None]] = {}
        # sandbox spawns are CPU-bound: more at once than a few per core only slows each of them
        self._starting = asyncio.Semaphore(max(2, 2 * (os.cpu_count() or 1)))
        # one zygote per (function, version), for its current generation; older ones wait
        # in _retired until the environments they forked have ended
        self._zygotes: dict[PoolKey, Zygote] = {}
        self._zygote_starts: dict[PoolKey, asyncio.Task[bool]] = {}
        self._retired: list[Zygote] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if cgroups.available():
            cgroups.sweep("lamina")
            if not cgroups.favour_dynamic_moves():
                log.info("cgroup2 is not mounted with favordynmods: environment starts will be slower")
        await asyncio.get_running_loop().run_in_executor(None, self._scratch.start)
        if self._scratch.usable and self._disk.capacity_mb < 512:
            log.warning("disk capacity for /tmp is %d MB, less than one environment's default 512 MB: every "
                        "start will be throttled (free space on the data dir, or set LAMINA_DISK_CAPACITY_MB)",
                        self._disk.capacity_mb)
        self._scratch.refill()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self._provisioned.clear()
        for task in list(self._provisioning.values()):
            task.cancel()
        for pool in self._pools.values():
            for env in pool:
                pool.discard(env)
        self._pools.clear()
        for starting in list(self._zygote_starts.values()):
            starting.cancel()
        for zygote in [*self._zygotes.values(), *self._retired]:
            zygote.destroy()
        self._zygotes.clear()
        self._retired.clear()
        await self._scratch.aclose()

    async def _reap_forever(self) -> None:
        interval = max(0.2, min(5.0, self._settings.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for pool in self._pools.values():
                pool.reap_idle(self._settings.idle_timeout)
            self._reap_zygotes(time.monotonic() - self._settings.idle_timeout)

    def _reap_zygotes(self, idle_since: float) -> None:
        """Stop retired zygotes whose environments have all ended, and zygotes that have
        forked nothing since `idle_since` and have no environment left."""
        for zygote in [z for z in self._retired if z.live <= 0]:
            zygote.destroy()
            self._retired.remove(zygote)
        for pool_key, zygote in list(self._zygotes.items()):
            if zygote.live <= 0 and (zygote.state is ZygoteState.DEAD or zygote.last_used < idle_since) \
                    and pool_key not in self._zygote_starts:
                zygote.destroy()
                del self._zygotes[pool_key]

    def _retire_zygote(self, pool_key: PoolKey) -> None:
        zygote = self._zygotes.pop(pool_key, None)
        starting = self._zygote_starts.pop(pool_key, None)
        if starting is not None:
            starting.cancel()
        if zygote is not None:
            if zygote.live <= 0:
                zygote.destroy()
            else:
                self._retired.append(zygote)

    # -- control-plane notifications -----------------------------------------------------
    def function_changed(self, cfg: FunctionConfig) -> None:
        """Code or configuration changed: environments of older generations stop serving."""
        key = (cfg.account_id, cfg.region, cfg.name)
        self._generations[(*key, cfg.version)] = cfg.generation
        self._limiter.set_reserved(key, cfg.reserved_concurrency)
        pool = self._pools.get((*key, cfg.version))
        if pool is not None:
            pool.retire_older_than(cfg.generation)
        zygote = self._zygotes.get((*key, cfg.version))
        if zygote is not None and zygote.generation != cfg.generation:
            self._retire_zygote((*key, cfg.version))

    # -- provisioned concurrency ------------------------------------------------------------
    def provision(self, cfg: FunctionConfig, requested: int) -> None:
        """Keep `requested` environments of this published version initialised and warm."""
        pool_key = (cfg.account_id, cfg.region, cfg.name, cfg.version)
        self._provisioned[pool_key] = (cfg, requested)
        pool = self._pools.setdefault(pool_key, FunctionPool())
        self._generations.setdefault(pool_key, cfg.generation)
        extra = pool.provisioned()[requested:]
        for env in extra:  # fewer wanted: they become ordinary environments, reaped when idle
            env.mark_provisioned(False)
        if requested == 0:
            self._provisioned.pop(pool_key, None)
        self._schedule_provisioning(pool_key)

    def provisioned_available(self, cfg: FunctionConfig) -> int:
        pool = self._pools.get((cfg.account_id, cfg.region, cfg.name, cfg.version))
        return 0 if pool is None else sum(1 for env in pool.provisioned() if env.state is not EnvState.STARTING)

    def _schedule_provisioning(self, pool_key: PoolKey) -> None:
        if pool_key in self._provisioning or pool_key not in self._provisioned:
            return
        task = asyncio.get_running_loop().create_task(self._fill_provisioned(pool_key))
        self._provisioning[pool_key] = task
        task.add_done_callback(lambda _t: self._provisioning.pop(pool_key, None))

    async def _fill_provisioned(self, pool_key: PoolKey) -> None:
        while pool_key in self._provisioned:
            cfg, requested = self._provisioned[pool_key]
            pool = self._pools.setdefault(pool_key, FunctionPool())
            missing = requested - len(pool.provisioned())
            if missing <= 0:
                return
            reservation = self._reserve(cfg)
            if reservation is None:
                log.warning("no memory or disk capacity left for provisioned concurrency of %s", cfg.qualified_arn)
                return
            try:
                env = await self._start_environment(cfg, pool, reservation, provisioned=True)
            except TooManyRequestsException:
                log.warning("no memory capacity left for a /tmp of provisioned concurrency of %s", cfg.qualified_arn)
                return
            if env.state is EnvState.IDLE:
                env.mark_provisioned()
                pool.give_back(env, self._generations.get(pool_key))
            else:
                pool.discard(env)
                log.warning("a provisioned environment of %s failed its init", cfg.qualified_arn)
                return

    def version_deleted(self, cfg: FunctionConfig) -> None:
        self._drop_pool((cfg.account_id, cfg.region, cfg.name, cfg.version))

    def function_deleted(self, account: str, region: str, name: str) -> None:
        key = (account, region, name)
        self._limiter.forget(key)
        self._burst.forget(key)
        self._stats.pop(key, None)
        for pool_key in [k for k in self._pools if k[:3] == key]:
            self._drop_pool(pool_key)
        # after the environments are gone; what they still write as they end is dropped, and
        # a function made again under this name starts a log of its own
        self._logs.remove(region, name)

    def _drop_pool(self, pool_key: PoolKey) -> None:
        self._generations.pop(pool_key, None)
        self._provisioned.pop(pool_key, None)
        pool = self._pools.pop(pool_key, None)
        if pool is not None:
            for env in pool:
                pool.discard(env)
        self._retire_zygote(pool_key)

    def release_admission(self, cfg: FunctionConfig) -> None:
        """Give back a slot taken with `try_admit` that no invoke will use."""
        self._limiter.release((cfg.account_id, cfg.region, cfg.name))

    # -- invoke ----------------------------------------------------------------------------
    def try_admit(self, cfg: FunctionConfig) -> bool:
        """Take one concurrency slot for `cfg` if the limits allow it now; the caller then
        passes `admitted=True` to `invoke`, which gives it back. The asynchronous queue holds
        events back this way instead of being throttled."""
        key = (cfg.account_id, cfg.region, cfg.name)
        if not self._limiter.admits(key):
            return False
        self._limiter.acquire(key)
        return True

    async def invoke(self, cfg: FunctionConfig, payload: bytes, *, request_id: str | None = None,
                     invoked_arn: str | None = None, client_context: str | None = None,
                     cognito_identity: str | None = None, tail_log: bool = False,
                     admitted: bool = False) -> InvokeResult:
        """Run one invocation. `invoked_arn` is the ARN as the caller named the function
        (qualifier included); `request_id` is the id the caller will be told; `admitted`:
        the caller already holds the concurrency slot (`try_admit`)."""
        key = (cfg.account_id, cfg.region, cfg.name)
        pool_key = (*key, cfg.version)
        self._generations[pool_key] = max(self._generations.get(pool_key, 0), cfg.generation)
        pool = self._pools.get(pool_key)
        if pool is None:
            pool = self._pools[pool_key] = FunctionPool()
        request_id = request_id or str(uuid.uuid4())
        stats = self._stats.setdefault(key, FunctionStats())
        if not admitted:
            try:
                self._limiter.acquire(key)
            except TooManyRequestsException:
                stats.throttles += 1
                raise
        try:
            env = await self._environment_for(cfg, key, pool, stats)
            stats.invocations += 1  # as Lambda's Invocations metric: throttled requests are not counted
            now_ms = int(time.time() * 1000)
            invocation = Invocation(
                request_id=request_id, payload=payload, deadline_ms=now_ms + cfg.timeout * 1000,
                invoked_function_arn=invoked_arn or cfg.arn, trace_id=_trace_id(),
                client_context=client_context, cognito_identity=cognito_identity,
            )
            try:
                outcome = await env.invoke(invocation, float(cfg.timeout))
            finally:
                pool.give_back(env, self._generations.get(pool_key))
        finally:
            self._limiter.release(key)
        if not outcome.ok:
            stats.errors += 1
        return InvokeResult(
            payload=outcome.payload,
            function_error=None if outcome.ok else "Unhandled",
            error_type=outcome.error_type,
            log_result=base64.b64encode(tail(outcome.log)).decode() if tail_log else None,
            executed_version=cfg.version,
            request_id=request_id,
            duration_ms=outcome.duration_ms,
            init_duration_ms=outcome.init_duration_ms,
        )

    async def _environment_for(self, cfg: FunctionConfig, key: FunctionKey, pool: FunctionPool,
                               stats: FunctionStats) -> Environment:
        """A warm environment of this generation if there is one, else a new one (within the
        burst limit and the memory capacity, evicting idle environments of others for room)."""
        while True:
            env = pool.take(cfg.generation)
            if env is None:
                break
            # a warm environment serves only once its runtime is back in GET /next
            if await env.wait_until_parked(float(cfg.timeout)):
                return env
            pool.discard(env)
        try:
            self._burst.take(key)
            reservation = self._reserve(cfg)
            if reservation is None:
                # AWS has no throttle reason for a host out of room; this is the account's
                # concurrency running out, as with memory
                raise throttled(ACCOUNT_LIMIT)
        except TooManyRequestsException:
            stats.throttles += 1
            raise
        stats.cold_starts += 1
        return await self._start_environment(cfg, pool, reservation)

    def _needs(self, cfg: FunctionConfig) -> Reservation:
        """What an environment of `cfg` holds: its MemorySize, and its /tmp on disk; where /tmp
        is a tmpfs (no loop devices) it is memory, charged to the environment's cgroup."""
        if self._scratch.usable:
            return Reservation(cfg.memory_size, cfg.ephemeral_storage)
        return Reservation(cfg.memory_size + cfg.ephemeral_storage, 0)

    def _fits(self, need: Reservation) -> bool:
        return self._capacity.fits(need.memory_mb) and self._disk.fits(need.disk_mb)

    def _reserve(self, cfg: FunctionConfig) -> Reservation | None:
        """Reserve room for one new environment of `cfg` now (before any await, so that starts
        running side by side cannot all take the same room), evicting idle environments for it;
        None when there is no room."""
        need = self._needs(cfg)
        if not self._fits(need):
            self._evict_idle(need)
            if not self._fits(need):
                return None
        self._capacity.reserve(need.memory_mb)
        self._disk.reserve(need.disk_mb)
        return need

    def _release(self, reservation: Reservation) -> None:
        self._capacity.free(reservation.memory_mb)
        self._disk.free(reservation.disk_mb)

    def _evict_idle(self, need: Reservation) -> None:
        """Destroy idle environments, least recently used first, until `need` fits; none when
        even all of them would not make room (the request is throttled anyway)."""
        idle = sorted(((env, pool) for pool in self._pools.values() for env in pool.idle if not env.provisioned),
                      key=lambda pair: pair[0].last_used)
        held = [self._held[env] for env, _pool in idle if env in self._held]
        if not (self._capacity.fits(need.memory_mb - sum(r.memory_mb for r in held))
                and self._disk.fits(need.disk_mb - sum(r.disk_mb for r in held))):
            return
        for env, pool in idle:
            if self._fits(need):
                return
            pool.discard(env)  # its on_dead gives its reservation back at once

    async def _start_environment(self, cfg: FunctionConfig, pool: FunctionPool, reservation: Reservation, *,
                                 provisioned: bool = False) -> Environment:
        """Start an environment holding `reservation` (taken by `_reserve`): the environment
        gives it back when it ends; until there is one, a failure here does."""
        launch = self._catalog.get(cfg.runtime or "")
        # taken before any await: if the function is deleted meanwhile, this log is the removed one
        # and what the environment writes is dropped, not left behind for a function of that name
        function_log = self._logs.open(cfg.region, cfg.name)
        loop = asyncio.get_running_loop()
        try:
            code_dir = await loop.run_in_executor(None, self._code_dir, cfg)
            opt_dir = await loop.run_in_executor(None, self._opt_dir, cfg) if cfg.layers else None
            scratch, reservation = await self._tmp_for(cfg, reservation)
        except BaseException:
            self._release(reservation)
            raise
        argv = launch.argv if launch else ("/var/task/bootstrap",)
        # lexists: a bootstrap that is a symlink resolves inside the sandbox; following it on
        # the host would tell the function which host paths exist
        if launch is not None and launch.runtime_dir is None and not os.path.lexists(code_dir / "bootstrap") \
                and opt_dir is not None and os.path.lexists(opt_dir / "bootstrap"):
            argv = ("/opt/bootstrap",)  # a custom runtime may come from a layer
        env_vars = self._environment_variables(cfg)
        spec = SandboxSpec(
            code_dir=code_dir, argv=argv,
            extra_ro_binds=((str(opt_dir), "/opt"),) if opt_dir is not None else (),
            env=env_vars, tmp_mb=cfg.ephemeral_storage, tmp_device=scratch.device if scratch else None,
            runtime_dir=launch.runtime_dir if launch else None,
            uid=self._settings.sandbox_uid, gid=self._settings.sandbox_gid,
        )
        # a tmpfs /tmp (no loop devices here) is charged to the memory cgroup: budget for it
        tmp_in_memory = 0 if scratch else cfg.ephemeral_storage

        def released(env: Environment) -> None:
            self._release(self._held.pop(env, reservation))
            if scratch is not None:
                self._scratch.release(scratch)
            if env.provisioned:  # a provisioned environment died (timeout, crash): replace it
                self._schedule_provisioning((cfg.account_id, cfg.region, cfg.name, cfg.version))

        env = Environment(
            spec=spec, limits=limits_for(cfg.memory_size, tmp_in_memory, self._settings.pids_limit),
            cgroup_base=self._cgroup_base, memory_mb=cfg.memory_size, version=cfg.version,
            log_writer=function_log.write, key=cfg.generation, on_dead=released,
        )
        self._held[env] = reservation
        env_vars["AWS_LAMBDA_LOG_STREAM_NAME"] = (
            time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{cfg.version}]{env.id}")
        pool.add(env)
        if launch is not None and launch.runtime_dir is None and argv == ("/var/task/bootstrap",) \
                and not os.path.lexists(code_dir / "bootstrap"):
            await env.fail_start(RuntimeReply(False, (
                b'{"errorType":"Runtime.InvalidEntrypoint","errorMessage":"Couldn\'t find valid bootstrap(s): '
                b'[/var/task/bootstrap /opt/bootstrap]"}'), "Runtime.InvalidEntrypoint"))
        else:
            pool_key = (cfg.account_id, cfg.region, cfg.name, cfg.version)
            scaling_out = any(other is not env and other.key == cfg.generation for other in pool)
            zygote = await self._zygote_for(cfg, pool_key, launch, spec, scaling_out)
            await env.start(self._starting, zygote)
            if env.zygote is not None:
                self._stats.setdefault(pool_key[:3], FunctionStats()).forked_starts += 1
        return env

    async def _tmp_for(self, cfg: FunctionConfig, reservation: Reservation) -> tuple[Scratch | None, Reservation]:
        """The environment's disk-backed /tmp, or None for a tmpfs one. When a disk-backed one
        was reserved but cannot be made (no loop device, or no disk left), the tmpfs that
        replaces it is memory: the reservation moves there if memory has room, else this
        throttles (changing nothing)."""
        scratch = await self._scratch.acquire(cfg.ephemeral_storage)
        if scratch is not None or not reservation.disk_mb:
            return scratch, reservation
        if not self._capacity.fits(reservation.disk_mb):
            raise throttled(ACCOUNT_LIMIT)
        self._disk.free(reservation.disk_mb)
        self._capacity.reserve(reservation.disk_mb)
        return None, Reservation(reservation.memory_mb + reservation.disk_mb, 0)

    async def _zygote_for(self, cfg: FunctionConfig, pool_key: PoolKey, launch: RuntimeLaunch | None,
                          spec: SandboxSpec, scaling_out: bool) -> Zygote | None:
        """The function's zygote, once ready, if this environment should fork from it: when
        the function scales out (another environment of its configuration exists) or, with
        "always", from its first environment on. Starts the zygote when there is none and
        waits for it: a fork is far cheaper than the start it replaces."""
        mode = self._settings.fork_starts
        if mode == "off" or launch is None or launch.zygote_argv is None or spec.argv != launch.argv:
            return None
        if mode == "scale-out" and not scaling_out:
            return None
        zygote = self._zygotes.get(pool_key)
        if zygote is not None and zygote.generation != cfg.generation:
            self._retire_zygote(pool_key)
            zygote = None
        if zygote is None:
            zygote = Zygote(
                spec=replace(spec, argv=launch.zygote_argv, tmp_device=None, tmp_mb=1, zygote=True,
                             env={k: v for k, v in spec.env.items() if k != "AWS_LAMBDA_LOG_STREAM_NAME"}),
                # each environment forked leaves ~0.4 MB charged here (the pages the zygote
                # dirtied after the fork, the page tables of the fork) for as long as it lives
                limits=limits_for(cfg.memory_size + self._limiter.account_limit, 1, self._settings.pids_limit),
                cgroup_base=self._cgroup_base, generation=cfg.generation)
            self._zygotes[pool_key] = zygote
            # not behind the start gate: the environments queued there are waiting for it
            start = asyncio.get_running_loop().create_task(zygote.start())
            self._zygote_starts[pool_key] = start

            def started(done: asyncio.Task[bool]) -> None:
                if self._zygote_starts.get(pool_key) is done:
                    del self._zygote_starts[pool_key]

            start.add_done_callback(started)
        pending = self._zygote_starts.get(pool_key)
        if pending is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(pending)
        return zygote if zygote.state is ZygoteState.READY else None

    def _environment_variables(self, cfg: FunctionConfig) -> dict[str, str]:
        launch = self._catalog.get(cfg.runtime or "")
        env = dict(cfg.environment)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": cfg.name,
            "AWS_LAMBDA_FUNCTION_VERSION": cfg.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": cfg.log_group_name,
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": cfg.region,
            "AWS_DEFAULT_REGION": cfg.region,
            "_HANDLER": cfg.handler or "",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
            "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
                               "/var/task/lib:/opt/lib",
        })
        if cfg.log_format == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            env["AWS_LAMBDA_LOG_LEVEL"] = cfg.application_log_level or "INFO"
        if launch is not None:
            if launch.execution_env:
                env["AWS_EXECUTION_ENV"] = launch.execution_env
            env.update(dict(launch.extra_env))
        return env

    # -- introspection -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        functions: dict[str, Any] = {}
        for key in sorted({k[:3] for k in self._pools} | set(self._stats)):
            _account, region, name = key
            counts = dict.fromkeys(("starting", "idle", "busy", "provisioned"), 0)
            memory = disk = 0
            envs = [env for pool_key, pool in self._pools.items() if pool_key[:3] == key for env in pool]
            for env in envs:
                state = "provisioned" if env.provisioned and env.state is EnvState.IDLE else env.state.value
                if state in counts:
                    counts[state] += 1
                    memory += env.memory_mb
                    held = self._held.get(env)
                    disk += held.disk_mb if held is not None else 0
            stats = self._stats.get(key, FunctionStats())
            functions[f"{region}/{name}"] = {
                "environments": counts, "concurrent_executions": self._limiter.inflight(key),
                "invocations": stats.invocations, "errors": stats.errors, "throttles": stats.throttles,
                "cold_starts": stats.cold_starts, "forked_starts": stats.forked_starts, "memory_mb": memory,
                "disk_mb": disk,
                "zygotes": sum(1 for pool_key, z in self._zygotes.items()
                               if pool_key[:3] == key and z.state is ZygoteState.READY),
            }
        return {
            "capacity_mb": self._capacity.capacity_mb, "reserved_mb": self._capacity.reserved_mb,
            "disk_capacity_mb": self._disk.capacity_mb, "disk_reserved_mb": self._disk.reserved_mb,
            # where environments' /tmp lives: "disk" (loop devices) or "memory" (tmpfs)
            "tmp_backing": "disk" if self._scratch.usable else "memory",
            "concurrency_limit": self._limiter.account_limit,
            "concurrent_executions": self._limiter.concurrent_executions, "functions": functions,
        }
