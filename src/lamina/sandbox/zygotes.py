"""Which zygote each function version forks from: the zygote provider.

One zygote per template (function version), for its current configuration generation.
A zygote of an older generation is retired: it no longer forks, and it is stopped once
the environments it forked have ended (they live in its pid namespace, so they would end
with it). Zygote starts run as supervised tasks, outside the start gate: the environments
queued at the gate are the ones waiting for it. Runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from lamina.domain.model import FunctionKey, VersionKey
from lamina.sandbox.cgroups import limits_for
from lamina.sandbox.linux import SandboxSpec
from lamina.sandbox.zygote import Zygote, ZygoteState
from lamina.tasks import Supervisor


class ZygoteProvider(Protocol):
    """Zygotes by template, as environments of the Linux backend ask for them."""

    async def zygote_for(self, template: VersionKey, generation: int, spec: SandboxSpec,
                         memory_mb: int) -> Zygote | None:
        """The template's zygote once ready to fork (started if there is none), else None."""

    def retire(self, template: VersionKey, generation: int | None = None) -> None:
        """Stop forking from the template's zygote unless it is of `generation`."""

    def reap(self, idle_since: float) -> None:
        """Stop retired zygotes with no environment left, and idle ones since `idle_since`."""

    def ready(self, function: FunctionKey) -> int: ...

    def close(self) -> None: ...


class ZygotePool:
    def __init__(self, *, supervisor: Supervisor, cgroup_base: str, pids_limit: int, max_environments: int,
                 off_loop: Callable[[Callable[[], None], str], None]) -> None:
        self._supervisor = supervisor
        self._cgroup_base = cgroup_base
        self._pids_limit = pids_limit
        self._max_environments = max_environments
        self._off_loop = off_loop
        self._zygotes: dict[VersionKey, Zygote] = {}
        self._starts: dict[VersionKey, asyncio.Task[bool]] = {}
        self._retired: list[Zygote] = []

    async def zygote_for(self, template: VersionKey, generation: int, spec: SandboxSpec,
                         memory_mb: int) -> Zygote | None:
        """Waits for the zygote's start when it is not ready yet: a fork is far cheaper than
        the fresh start it replaces."""
        zygote = self._zygotes.get(template)
        if zygote is not None and zygote.generation != generation:
            self.retire(template)
            zygote = None
        if zygote is None:
            zygote = Zygote(
                spec=replace(spec, tmp_device=None, tmp_mb=1, zygote=True),
                # each environment forked leaves ~0.4 MB charged here (the pages the zygote
                # dirtied after the fork, the page tables of the fork) for as long as it lives
                limits=limits_for(memory_mb + self._max_environments, 1, self._pids_limit),
                cgroup_base=self._cgroup_base, generation=generation, off_loop=self._off_loop)
            self._zygotes[template] = zygote
            start = self._supervisor.spawn(zygote.start(), name=f"start the zygote of {template.name}")
            self._starts[template] = start

            def started(done: asyncio.Task[bool]) -> None:
                if self._starts.get(template) is done:
                    del self._starts[template]

            start.add_done_callback(started)
        pending = self._starts.get(template)
        if pending is not None:
            # shielded: an environment whose own start is cancelled does not cancel the zygote's
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(pending)
        return zygote if zygote.state is ZygoteState.READY else None

    def retire(self, template: VersionKey, generation: int | None = None) -> None:
        zygote = self._zygotes.get(template)
        if zygote is None or zygote.generation == generation:
            return
        del self._zygotes[template]
        starting = self._starts.pop(template, None)
        if starting is not None:
            starting.cancel()
        if zygote.live <= 0:
            zygote.destroy()
        else:
            self._retired.append(zygote)

    def reap(self, idle_since: float) -> None:
        for zygote in [z for z in self._retired if z.live <= 0]:
            zygote.destroy()
            self._retired.remove(zygote)
        for template, zygote in list(self._zygotes.items()):
            if zygote.live <= 0 and (zygote.state is ZygoteState.DEAD or zygote.last_used < idle_since) \
                    and template not in self._starts:
                zygote.destroy()
                del self._zygotes[template]

    def ready(self, function: FunctionKey) -> int:
        return sum(1 for template, z in self._zygotes.items()
                   if template.function == function and z.state is ZygoteState.READY)

    def close(self) -> None:
        for starting in list(self._starts.values()):
            starting.cancel()
        for zygote in [*self._zygotes.values(), *self._retired]:
            zygote.destroy()
        self._zygotes.clear()
        self._retired.clear()
