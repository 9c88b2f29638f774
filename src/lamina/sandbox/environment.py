"""One execution environment of the Linux backend: a sandboxed runtime and its Runtime API.

It keeps the `protocols.Sandbox` lifecycle (STARTING → IDLE ⇄ BUSY → DEAD, every other
transition refused by `LIFECYCLE`) and serves one invocation at a time. It is frozen
(cgroup freezer) once its runtime has waited in `GET /next` for `FREEZE_AFTER_SECONDS`,
thawed to serve. Timeouts, crashes and OOM kills end it, and come back as `Outcome` values;
OS errors it does not recover from itself (a failed fork falls back to a fresh start)
escape to `guard.GuardedSandbox`, the one place they are translated. Its output and its
invocations' START/END/REPORT lines go to its `InvocationLog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from lamina.domain.lifecycle import Lifecycle
from lamina.errors import SandboxError
from lamina.runtimeapi.channel import Invocation, RuntimeChannel, RuntimeReply
from lamina.runtimeapi.server import serve
from lamina.sandbox import exits
from lamina.sandbox.cgroups import CgroupLimits, CgroupSet
from lamina.sandbox.exits import ErrorType, Exit
from lamina.sandbox.invocation_log import InvocationLog, OutputPump, Status
from lamina.sandbox.linux import SandboxProcess, SandboxSpec, spawn
from lamina.sandbox.netns import new_netns_listener
from lamina.sandbox.protocols import EnvState, Outcome, SandboxRequest
from lamina.sandbox.scratch import Scratch, detached_mount
from lamina.sandbox.zygote import Zygote
from lamina.sandbox.zygotes import ZygoteProvider

log = logging.getLogger("lamina.sandbox")

INIT_TIMEOUT_SECONDS = 10.0
# An idle environment is frozen once its runtime has waited this long in GET /next: under
# load, an environment reused within it is never frozen and thawed (two cgroup writes that
# cost more than the rest of a warm invoke); background threads get at most this much time.
FREEZE_AFTER_SECONDS = 0.02

LIFECYCLE = Lifecycle[EnvState]("environment", {
    EnvState.STARTING: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.DEAD}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.DEAD: frozenset(),
})


@dataclass(frozen=True)
class Host:
    """What the backend's environments share."""

    cgroup_base: str
    gate: asyncio.Semaphore        # bounds the sandbox spawns running at once
    zygotes: ZygoteProvider
    off_loop: Callable[[Callable[[], None], str], None]  # supervised blocking clean-up
    release_scratch: Callable[[Scratch], None]


class Environment:
    def __init__(self, request: SandboxRequest, *, spec: SandboxSpec, zygote_spec: SandboxSpec | None,
                 limits: CgroupLimits, host: Host, scratch: Scratch | None,
                 log_writer: Callable[[bytes], float], on_dead: Callable[[], None]) -> None:
        self.id = request.id
        self.generation = request.generation
        self.memory_mb = request.memory_mb
        self.provisioned = False
        self.state = EnvState.STARTING
        self.last_used = time.monotonic()
        self.zygote: Zygote | None = None  # set when forked from one
        self._request = request
        self._spec = spec
        self._zygote_spec = zygote_spec
        self._limits = limits
        self._host = host
        self._scratch = scratch
        self._cgroups = CgroupSet(host.cgroup_base, request.id)
        self._log = InvocationLog(log_writer, request.template.version, request.memory_mb)
        self._on_dead: Callable[[], None] | None = on_dead
        self._channel = RuntimeChannel(on_next=self._runtime_parked, on_init_error=self._init_failed)
        self._proc: SandboxProcess | None = None
        self._pump: OutputPump | None = None
        self._server: asyncio.Server | None = None
        self._loop = asyncio.get_running_loop()
        self._init_done: asyncio.Future[RuntimeReply | None] = self._loop.create_future()
        self._frozen = False
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._init_ms: float | None = None
        self._exit: Exit | None = None
        self._init_failure: RuntimeReply | None = None
        self._init_exit: tuple[ErrorType, str] | None = None  # when the runtime died during init
        self._max_memory = 0
        self._released = False
        self._parked_waiter: asyncio.Future[bool] | None = None

    @property
    def tmp_on_disk(self) -> bool:
        return self._scratch is not None

    @property
    def forked(self) -> bool:
        return self.zygote is not None

    def _transition(self, new: EnvState) -> None:
        self.state = LIFECYCLE.check(self.state, new, subject=self.id)

    # -- start -------------------------------------------------------------------------------
    async def start(self, *, fork: bool = False) -> RuntimeReply | None:
        """Start the sandbox (forked from the template's zygote when `fork` and there is one)
        and wait for init. Returns None when ready, or the init failure (then DEAD)."""
        if self._request.init_log:
            self._log.platform(self._request.init_log)
        zygote = None
        if fork and self._zygote_spec is not None:
            # not behind the gate: the zygote's own start is what the environments queued there wait for
            zygote = await self._host.zygotes.zygote_for(self._request.template, self.generation,
                                                         self._zygote_spec, self.memory_mb)
        started = time.perf_counter()  # Init Duration: from here (the zygote's start is not the function's)
        async with self._host.gate:
            if zygote is None or not await self._fork_from(zygote):
                ns_fd, sock = await self._loop.run_in_executor(None, self._prepare_netns_and_cgroups)
                try:
                    self._server = await serve(sock, self._channel)
                    self._proc = await self._loop.run_in_executor(None, spawn, self._spec, self._cgroups, ns_fd)
                finally:
                    os.close(ns_fd)
        proc = self._proc
        assert proc is not None
        self._pump = OutputPump(proc, self._log, self._loop)
        self._loop.add_reader(proc.pidfd, self._process_exited)
        failure: RuntimeReply | None
        try:
            async with asyncio.timeout(INIT_TIMEOUT_SECONDS):
                failure = await self._init_done
        except TimeoutError:
            failure = exits.failure(ErrorType.UNKNOWN, "Init phase timed out after 10.00 seconds")
        self._init_ms = (time.perf_counter() - started) * 1000
        if failure is not None:
            self._pump.drain()
            self._init_failure = failure
            self._die()
            return failure
        self._transition(EnvState.IDLE)
        return None

    def mark_provisioned(self, provisioned: bool = True) -> None:
        self.provisioned = provisioned
        if provisioned:
            self._init_ms = None

    async def fail_start(self, failure: RuntimeReply, init_ms: float | None = 0.0) -> None:
        """DEAD without (more of) a start: the first invoke reports `failure`."""
        if self.state is EnvState.DEAD:
            return
        self._init_ms = init_ms
        self._init_failure = failure
        self._die()

    def _prepare_netns_and_cgroups(self) -> tuple[int, socket.socket]:
        self._cgroups.create(self._limits)
        return new_netns_listener()

    async def _fork_from(self, zygote: Zygote) -> bool:
        """Start as a fork of `zygote`. False (nothing left behind) when that failed."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        tmp_fd: int | None = None
        try:
            await self._loop.run_in_executor(None, self._cgroups.create, self._limits)
            if self._spec.tmp_device is not None:
                tmp_fd = await self._loop.run_in_executor(None, detached_mount, self._spec.tmp_device)
            child, sock = await self._loop.run_in_executor(
                None, zygote.fork, dict(self._spec.env), out_w, tmp_fd, self._spec.tmp_mb, self._cgroups)
        except (OSError, SandboxError) as exc:  # recovered here: the environment starts afresh instead
            os.set_blocking(out_r, False)
            with contextlib.suppress(OSError):
                exc = SandboxError(f"{exc} {os.read(out_r, 4096).decode(errors='replace').strip()}".strip())
            log.warning("could not fork an environment from the zygote, starting one afresh: %s", exc)
            os.close(out_r)
            self._cgroups.kill()
            return False
        finally:
            os.close(out_w)
            if tmp_fd is not None:
                os.close(tmp_fd)
        zygote.live += 1
        self.zygote = zygote
        os.set_blocking(out_r, False)
        self._proc = SandboxProcess(child=child, pidfd=os.dup(child.pidfd), output_fd=out_r, cgroups=self._cgroups)
        self._server = await serve(sock, self._channel)
        return True

    # -- invoke --------------------------------------------------------------------------------
    async def invoke(self, invocation: Invocation, timeout_s: float) -> Outcome:
        """Run one invocation. The environment must be IDLE (or have failed its init, which
        is then reported as this invocation's error); it ends IDLE or DEAD."""
        if self._init_failure is not None:
            return self._report_init_failure(invocation, self._init_failure)
        self.state = LIFECYCLE.check(self.state, EnvState.BUSY, subject=self.id)
        self._cancel_freeze()
        if self._frozen:
            self._cgroups.thaw()
            self._frozen = False
        rid = invocation.request_id
        init_ms, self._init_ms = self._init_ms, None
        self._log.start(rid)
        began = time.perf_counter()
        reply_future = self._channel.dispatch(invocation)
        status: Status | None = None
        try:
            async with asyncio.timeout(timeout_s):
                reply = await asyncio.shield(reply_future)
        except TimeoutError:
            reply = exits.failure(
                ErrorType.TIMED_OUT, f"RequestId: {rid} Error: Task timed out after {timeout_s:.2f} seconds")
            self._kill(exits.TIMED_OUT)
            status = "timeout"
            self._log.timed_out(rid, timeout_s)
        duration = (time.perf_counter() - began) * 1000
        self._channel.finish()
        if self._pump is not None:
            self._pump.drain()
        if status is None and self.state is EnvState.DEAD:
            status = "error"
        captured = self._log.end(rid, duration, init_ms, status, reply.error_type, self._memory_used())
        if self.state is EnvState.BUSY:
            self.state = LIFECYCLE.check(self.state, EnvState.IDLE, subject=self.id)
            self.last_used = time.monotonic()
            if self._channel.parked:
                self._freeze_soon()
        return Outcome(reply.ok, reply.body, None if reply.ok else (reply.error_type or ErrorType.UNHANDLED),
                       captured, duration, init_ms)

    def _report_init_failure(self, invocation: Invocation, failure: RuntimeReply) -> Outcome:
        rid = invocation.request_id
        if self._init_exit is not None:  # the runtime died during init: name the request it failed
            error_type, message = self._init_exit
            failure = exits.failure(error_type, f"RequestId: {rid} {message}")
        init_ms, self._init_ms = self._init_ms, None
        self._log.start(rid)
        captured = self._log.end(rid, 0.0, init_ms, "error", failure.error_type, self._memory_used())
        return Outcome(False, failure.body, failure.error_type or ErrorType.UNKNOWN, captured, 0.0, init_ms)

    def _memory_used(self) -> int:
        if self.state is not EnvState.DEAD:
            self._max_memory = max(self._max_memory, self._cgroups.max_memory_used())
        return self._max_memory

    # -- runtime events -----------------------------------------------------------------------
    async def wait_until_parked(self, timeout_s: float) -> bool:
        if self.state is EnvState.DEAD:
            return False
        if self._channel.parked:
            return True
        self._parked_waiter = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                return await self._parked_waiter
        except TimeoutError:
            self.destroy()
            return False
        finally:
            self._parked_waiter = None

    def _runtime_parked(self, first: bool) -> None:
        waiter = self._parked_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)  # an invoke is waiting for this environment: no freeze
        elif first:
            if not self._init_done.done():
                self._init_done.set_result(None)
        elif self.state is EnvState.IDLE:
            self._freeze_soon()

    def _init_failed(self) -> None:
        if not self._init_done.done():
            self._init_done.set_result(self._channel.init_error)

    def _freeze_soon(self) -> None:
        if not self._frozen and self._freeze_timer is None:
            self._freeze_timer = self._loop.call_later(FREEZE_AFTER_SECONDS, self._freeze)

    def _cancel_freeze(self) -> None:
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None

    def _freeze(self) -> None:
        self._freeze_timer = None
        if not self._frozen and self.state is EnvState.IDLE:
            try:
                self._cgroups.freeze()
                self._frozen = True
            except OSError:  # not frozen: it stays awake, which costs a little CPU, not correctness
                pass

    def _process_exited(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._loop.remove_reader(proc.pidfd)
        rc = proc.child.poll()
        if self._pump is not None:
            self._pump.drain()
        if self._exit is None:
            self._exit = exits.from_status(rc)
        error_type = ErrorType.OUT_OF_MEMORY if self._cgroups.oom_killed(self._exit.sigkilled) else ErrorType.EXIT
        message = exits.message(self._exit)
        if not self._init_done.done():
            if self._channel.init_error is None:
                self._init_exit = (error_type, message)
            self._init_done.set_result(self._channel.init_error or exits.failure(error_type, message))
            return
        if self.state is EnvState.BUSY:
            current = self._channel.current
            rid = current.request_id if current else ""
            self._log.emit(f"RequestId: {rid} {message}\n".encode())
            self._channel.fail(exits.failure(error_type, f"RequestId: {rid} {message}"))
        self._die()

    # -- teardown ---------------------------------------------------------------------------------
    def _kill(self, why: Exit) -> None:
        self._exit = why
        try:
            self._cgroups.kill()
        finally:
            self._frozen = False
            self._die()

    def _die(self) -> None:
        self._cancel_freeze()
        waiter = self._parked_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        if self.state is not EnvState.DEAD:
            self._memory_used()
            self._transition(EnvState.DEAD)
            self._channel.close()
            on_dead, self._on_dead = self._on_dead, None
            if on_dead is not None:
                on_dead()
        self._release()

    def destroy(self) -> None:
        if self.state is not EnvState.DEAD:
            self._kill(self._exit or exits.DESTROYED)

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._pump is not None:
            self._pump.stop()
        if self.zygote is not None:
            self.zygote.live -= 1
        if self._server is not None:
            self._server.close()
        if self._proc is not None:
            self._proc.detach(self._loop)
        if self._scratch is not None:
            self._host.release_scratch(self._scratch)
        self._host.off_loop(self._reap, f"reap environment {self.id}")

    def _reap(self) -> None:
        self._cgroups.destroy()
        if self._proc is not None:
            self._proc.reap()
