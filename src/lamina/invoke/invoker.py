"""The invoke path: admit, place, run the event, return the outcome as a value.

`Invoker.invoke` is the one entry point. It never raises for function failures; those
come back in `InvokeResult`. Throttles (concurrency, burst, capacity) are raised as
`TooManyRequestsException`. The rest is delegated: admission to `limits`, which
environment serves to `placement` (pools, capacity, eviction, reaping), warm-ahead
environments to `provisioned`, counters to `stats`, sandboxes to a `SandboxProvider`.
The control plane tells the invoker about changes through the callbacks below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamina.domain.model import FunctionConfig, FunctionKey
from lamina.errors import TooManyRequestsException
from lamina.invoke.capacity import HostCapacity
from lamina.invoke.limits import ConcurrencyLimiter, Lease
from lamina.invoke.placement import Placement
from lamina.invoke.provisioned import ProvisionedConcurrency
from lamina.invoke.result import InvokeResult
from lamina.invoke.stats import Stats, function_status
from lamina.observe.logs import LogSink
from lamina.runtimeapi.channel import Invocation
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.sandbox.protocols import SandboxProvider
from lamina.settings import Settings
from lamina.tasks import Supervisor

log = logging.getLogger("lamina.invoke")


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class Invoker:
    def __init__(self, settings: Settings, catalog: RuntimeCatalog, logs: LogSink, sandboxes: SandboxProvider,
                 supervisor: Supervisor, code_dir: Callable[[FunctionConfig], Path],
                 opt_dir: Callable[[FunctionConfig], Path | None] = lambda _cfg: None) -> None:
        self._settings = settings
        self._logs = logs
        self._sandboxes = sandboxes
        self._supervisor = supervisor
        self._limiter = ConcurrencyLimiter(settings.effective_concurrency_limit)
        self._capacity = HostCapacity(settings.effective_capacity_mb, settings.effective_disk_capacity_mb())
        self._stats = Stats()
        self._placement = Placement(settings, catalog, logs, sandboxes, self._capacity, self._stats,
                                    code_dir, opt_dir)
        self._provisioned = ProvisionedConcurrency(self._placement, supervisor)
        self._placement.on_provisioned_dead = self._provisioned.fill
        self._reaper: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self._sandboxes.start()
        if self._sandboxes.tmp_on_disk and self._capacity.disk.capacity_mb < 512:
            log.warning("disk capacity for /tmp is %d MB, less than one environment's default 512 MB: every "
                        "start will be throttled (free space on the data dir, or set LAMINA_DISK_CAPACITY_MB)",
                        self._capacity.disk.capacity_mb)
        self._reaper = self._supervisor.spawn(self._placement.reap_forever(), name="reap idle environments")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self._provisioned.close()
        self._placement.close()
        await self._sandboxes.close()

    # -- control-plane notifications -----------------------------------------------------
    def function_changed(self, cfg: FunctionConfig) -> None:
        """Code or configuration changed: environments of older generations stop serving."""
        self._limiter.set_reserved(cfg.key, cfg.reserved_concurrency)
        self._placement.function_changed(cfg)

    def provision(self, cfg: FunctionConfig, requested: int) -> None:
        """Keep `requested` environments of this published version initialised and warm."""
        self._provisioned.provision(cfg, requested)

    def provisioned_available(self, cfg: FunctionConfig) -> int:
        return self._provisioned.available(cfg)

    def version_deleted(self, cfg: FunctionConfig) -> None:
        self._provisioned.forget(cfg.version_key)
        self._placement.drop(cfg.version_key)

    def function_deleted(self, account: str, region: str, name: str) -> None:
        key = FunctionKey(account, region, name)
        self._limiter.forget(key)
        self._placement.forget(key)
        self._stats.forget(key)
        for version in self._placement.versions_of(key):
            self._provisioned.forget(version)
            self._placement.drop(version)
        # after the environments are gone; what they still write as they end is dropped, and
        # a function made again under this name starts a log of its own
        self._logs.remove(region, name)

    # -- invoke ----------------------------------------------------------------------------
    def try_admit(self, cfg: FunctionConfig) -> Lease | None:
        """One concurrency slot for `cfg` if the limits allow it now (else None); the caller
        passes it to `invoke`, which releases it, or releases it itself. The asynchronous
        queue holds events back this way instead of being throttled."""
        if not self._limiter.admits(cfg.key):
            return None
        return self._limiter.acquire(cfg.key)

    @staticmethod
    def release_admission(lease: Lease) -> None:
        """Give back a slot taken with `try_admit` that no invoke will use."""
        lease.release()

    async def invoke(self, cfg: FunctionConfig, payload: bytes, *, request_id: str | None = None,
                     invoked_arn: str | None = None, client_context: str | None = None,
                     cognito_identity: str | None = None, tail_log: bool = False,
                     admission: Lease | None = None) -> InvokeResult:
        """Run one invocation. `invoked_arn` is the ARN as the caller named the function
        (qualifier included); `request_id` is the id the caller will be told; `admission`:
        the slot the caller already holds (`try_admit`), released here whatever happens."""
        version = cfg.version_key
        pool = self._placement.serving(cfg, version)
        request_id = request_id or str(uuid.uuid4())
        key = version.function
        stats = self._stats.of(key)
        if admission is None:
            try:
                admission = self._limiter.acquire(key)
            except TooManyRequestsException:
                stats.throttles += 1
                raise
        try:
            env = await self._placement.acquire(cfg, pool, stats)
            stats.invocations += 1
            invocation = Invocation(
                request_id=request_id, payload=payload, deadline_ms=int(time.time() * 1000) + cfg.timeout * 1000,
                invoked_function_arn=invoked_arn or cfg.arn, trace_id=_trace_id(),
                client_context=client_context, cognito_identity=cognito_identity,
            )
            try:
                outcome = await env.invoke(invocation, float(cfg.timeout))
            finally:
                self._placement.give_back(version, pool, env)
        finally:
            admission.release()
        if not outcome.ok:
            stats.errors += 1
        return InvokeResult.of(outcome, version=cfg.version, request_id=request_id, tail_log=tail_log)

    # -- introspection -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        functions: dict[str, Any] = {}
        for key in sorted(self._placement.functions() | self._stats.keys()):
            functions[f"{key.region}/{key.name}"] = function_status(
                key, self._stats.get(key), self._placement.environments(key),
                concurrent=self._limiter.inflight(key), zygotes=self._sandboxes.zygotes_ready(key),
                held_disk_mb=self._capacity.held_disk_mb)
        memory, disk = self._capacity.memory, self._capacity.disk
        return {
            "capacity_mb": memory.capacity_mb, "reserved_mb": memory.reserved_mb,
            "disk_capacity_mb": disk.capacity_mb, "disk_reserved_mb": disk.reserved_mb,
            # where environments' /tmp lives: "disk" (loop devices) or "memory" (tmpfs)
            "tmp_backing": "disk" if self._sandboxes.tmp_on_disk else "memory",
            "concurrency_limit": self._limiter.account_limit,
            "concurrent_executions": self._limiter.concurrent_executions, "functions": functions,
        }
