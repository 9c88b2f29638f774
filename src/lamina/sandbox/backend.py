"""The Linux backend: `protocols.SandboxProvider` over bubblewrap, Lamina's cgroups, zygotes
and disk-backed /tmp volumes.

It owns what its environments share: the cgroup parent `lamina/<pid>` (what a crashed
server left there is swept at start), the /tmp volumes (`ScratchPool`), the zygotes
(`ZygotePool`) and the start gate. Every sandbox it makes is handed out wrapped in
`guard.GuardedSandbox`. Blocking clean-up runs off the event loop as supervised tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import replace

from lamina.domain.model import FunctionKey, VersionKey
from lamina.sandbox import cgroups
from lamina.sandbox.cgroups import limits_for
from lamina.sandbox.environment import Environment, Host
from lamina.sandbox.guard import GuardedSandbox
from lamina.sandbox.linux import SandboxSpec
from lamina.sandbox.protocols import Sandbox, SandboxRequest
from lamina.sandbox.scratch import ScratchPool
from lamina.sandbox.zygotes import ZygotePool
from lamina.settings import Settings
from lamina.tasks import Supervisor

log = logging.getLogger("lamina.sandbox")


class LinuxSandboxes:
    def __init__(self, settings: Settings, supervisor: Supervisor) -> None:
        self._settings = settings
        self._supervisor = supervisor
        self._cgroup_base = f"lamina/{os.getpid()}"
        self._scratch = ScratchPool(settings.data_dir.resolve() / "scratch", supervisor=supervisor,
                                    owner=(settings.sandbox_uid, settings.sandbox_gid))
        self._zygotes = ZygotePool(supervisor=supervisor, cgroup_base=self._cgroup_base,
                                   pids_limit=settings.pids_limit,
                                   max_environments=settings.effective_concurrency_limit, off_loop=self._off_loop)
        self._host = Host(
            cgroup_base=self._cgroup_base,
            # sandbox spawns are CPU-bound: more at once than a few per core only slows each of them
            gate=asyncio.Semaphore(max(2, 2 * (os.cpu_count() or 1))),
            zygotes=self._zygotes, off_loop=self._off_loop, release_scratch=self._scratch.release)

    @property
    def tmp_on_disk(self) -> bool:
        return self._scratch.usable

    async def start(self) -> None:
        if cgroups.available():
            cgroups.sweep("lamina")
            if not cgroups.favour_dynamic_moves():
                log.info("cgroup2 is not mounted with favordynmods: environment starts will be slower")
        await asyncio.get_running_loop().run_in_executor(None, self._scratch.start)
        self._scratch.refill()

    async def close(self) -> None:
        self._zygotes.close()
        await self._scratch.aclose()

    async def create(self, request: SandboxRequest, *, log: Callable[[bytes], float],
                     on_dead: Callable[[], None]) -> Sandbox:
        """A disk-backed /tmp when one can be made (else a tmpfs, charged to the memory cgroup)."""
        scratch = await self._scratch.acquire(request.tmp_mb)
        spec = SandboxSpec(
            code_dir=request.code_dir, argv=request.argv,
            extra_ro_binds=(((str(request.opt_dir), "/opt"),) if request.opt_dir is not None else ())
            + request.bytecode,
            env={**request.env, **request.instance_env}, tmp_mb=request.tmp_mb,
            tmp_device=scratch.device if scratch else None, runtime_dir=request.runtime_dir, root=request.root,
            uid=self._settings.sandbox_uid, gid=self._settings.sandbox_gid,
        )
        zygote_spec = None if request.zygote_argv is None else replace(
            spec, argv=request.zygote_argv, env=dict(request.env))
        limits = limits_for(request.memory_mb, 0 if scratch else request.tmp_mb, self._settings.pids_limit)
        return GuardedSandbox(Environment(
            request, spec=spec, zygote_spec=zygote_spec, limits=limits, host=self._host, scratch=scratch,
            log_writer=log, on_dead=on_dead))

    def retire(self, template: VersionKey, generation: int | None = None) -> None:
        self._zygotes.retire(template, generation)

    def reap(self, idle_since: float) -> None:
        self._zygotes.reap(idle_since)

    def zygotes_ready(self, function: FunctionKey) -> int:
        return self._zygotes.ready(function)

    def _off_loop(self, work: Callable[[], None], name: str) -> None:
        self._supervisor.spawn(asyncio.to_thread(work), name=name)
