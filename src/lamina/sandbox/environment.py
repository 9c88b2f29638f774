"""One execution environment: a sandboxed runtime process, its Runtime API and its log.

Lifecycle (every transition not listed is refused):

    STARTING ──► IDLE ◄──► BUSY
        │          │         │
        └──────────┴────┬────┘
                        ▼
                       DEAD      (terminal; destroy() after DEAD is a no-op)

An environment serves one function version (one configuration generation) and one
invocation at a time. It is frozen (cgroup freezer) while idle and the runtime is parked
in `GET /next`, thawed to serve. Timeouts, crashes and OOM kills end it; failures come
back as `Outcome` values, never as exceptions. The runtime's output goes to the log writer
as it comes; while the writer says the function is over its log rate, it is left unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lamina.errors import SandboxError
from lamina.runtimeapi.channel import Invocation, RuntimeChannel, RuntimeReply
from lamina.runtimeapi.server import serve
from lamina.sandbox.cgroups import CgroupLimits, CgroupSet
from lamina.sandbox.linux import SandboxProcess, SandboxSpec, spawn
from lamina.sandbox.netns import new_netns_listener
from lamina.sandbox.scratch import detached_mount
from lamina.sandbox.zygote import Zygote

log = logging.getLogger("lamina.sandbox")

INIT_TIMEOUT_SECONDS = 10.0
# An idle environment is frozen once its runtime has waited this long in GET /next: under
# load, an environment reused within it is never frozen and thawed (two cgroup writes that
# cost more than the rest of a warm invoke); background threads get at most this much time.
FREEZE_AFTER_SECONDS = 0.02
# At the end of an invocation, at most this much of what the function already wrote is read
# before END: a full pipe, which is all a writer can have written without waiting (1 MiB is
# the most an unprivileged process can make its pipe hold). A function that keeps writing
# meanwhile is read by the reader later, not in a loop here.
DRAIN_LIMIT_BYTES = 1 << 20
_SIGNAL_NAMES = {6: "aborted", 7: "bus error", 9: "killed", 11: "segmentation fault"}


class EnvState(enum.StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


_ALLOWED: dict[EnvState, frozenset[EnvState]] = {
    EnvState.STARTING: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.DEAD}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.DEAD: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one invocation as the platform saw it."""

    ok: bool
    payload: bytes
    error_type: str | None
    log: bytes
    duration_ms: float
    init_duration_ms: float | None


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _utc_stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Environment:
    def __init__(self, *, spec: SandboxSpec, limits: CgroupLimits, cgroup_base: str,
                 memory_mb: int, version: str, log_writer: Callable[[bytes], float],
                 on_dead: Callable[[Environment], None] | None = None, key: object = None) -> None:
        self.id = uuid.uuid4().hex
        self.key = key  # opaque to the environment: what its owner started it for
        self.provisioned = False  # kept warm ahead of traffic: never reaped or evicted while set
        self.spec = spec
        self.version = version
        self.memory_mb = memory_mb
        self.state = EnvState.STARTING
        self.last_used = time.monotonic()
        self._limits = limits
        self._cgroups = CgroupSet(cgroup_base, self.id)
        self._log_writer = log_writer
        self._on_dead = on_dead
        self._channel = RuntimeChannel(on_next=self._runtime_parked, on_init_error=self._init_failed)
        self._proc: SandboxProcess | None = None
        self._server: asyncio.Server | None = None
        self._loop = asyncio.get_running_loop()
        self._init_done: asyncio.Future[RuntimeReply | None] = self._loop.create_future()
        self._frozen = False
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._output_timer: asyncio.TimerHandle | None = None  # output not read until it fires
        self._capture: bytearray | None = bytearray()  # init output goes to the first invocation's tail
        self._init_ms: float | None = None
        self._exit_reason: str | None = None
        self._init_failure: RuntimeReply | None = None
        self._init_exit: tuple[str, str] | None = None  # (error type, message) when init died
        self._max_memory = 0
        self._destroyed = False
        self._parked_waiter: asyncio.Future[bool] | None = None
        self.zygote: Zygote | None = None  # set when forked from one

    # -- state -----------------------------------------------------------------------------
    def _transition(self, new: EnvState) -> None:
        if new not in _ALLOWED[self.state]:
            raise RuntimeError(f"environment {self.id}: {self.state} -> {new} is not allowed")
        self.state = new

    # -- start -------------------------------------------------------------------------------
    async def start(self, gate: asyncio.Semaphore | None = None, zygote: Zygote | None = None) -> RuntimeReply | None:
        """Start the sandbox (forked from `zygote` when given and it can) and wait for init.
        Returns None when ready, or the init failure (the environment is then DEAD). `gate`
        bounds how many starts run at once (the wait for the function's own init is
        outside it)."""
        failure: RuntimeReply | None
        started = time.perf_counter()
        try:
            async with gate or contextlib.nullcontext():
                if zygote is None or not await self._fork_from(zygote):
                    ns_fd, sock = await self._loop.run_in_executor(None, self._prepare_netns_and_cgroups)
                    try:
                        self._server = await serve(sock, self._channel)
                        self._proc = await self._loop.run_in_executor(None, spawn, self.spec, self._cgroups, ns_fd)
                    finally:
                        os.close(ns_fd)
        except (OSError, SandboxError) as exc:
            self._init_failure = RuntimeReply(
                False, _error_payload("Runtime.Unknown", f"could not start environment: {exc}"), "Runtime.Unknown")
            self._die()
            return self._init_failure
        assert self._proc is not None
        self._loop.add_reader(self._proc.output_fd, self._read_output)
        self._loop.add_reader(self._proc.pidfd, self._process_exited)
        try:
            async with asyncio.timeout(INIT_TIMEOUT_SECONDS):
                failure = await self._init_done
        except TimeoutError:
            failure = RuntimeReply(False, _error_payload(
                "Runtime.Unknown", "Init phase timed out after 10.00 seconds"), "Runtime.Unknown")
        self._init_ms = (time.perf_counter() - started) * 1000
        if failure is not None:
            self._drain_output()
            self._init_failure = failure
            self._die()
            return failure
        self._transition(EnvState.IDLE)
        return None

    def mark_provisioned(self, provisioned: bool = True) -> None:
        """Provisioned environments were initialised ahead of traffic: their first
        invocation reports no Init Duration, as on AWS."""
        self.provisioned = provisioned
        if provisioned:
            self._init_ms = None

    async def fail_start(self, failure: RuntimeReply) -> None:
        """Mark the environment as failed before it started (e.g. no bootstrap to run)."""
        self._init_ms = 0.0
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
            if self.spec.tmp_device is not None:
                tmp_fd = await self._loop.run_in_executor(None, detached_mount, self.spec.tmp_device)
            child, sock = await self._loop.run_in_executor(
                None, zygote.fork, dict(self.spec.env), out_w, tmp_fd, self.spec.tmp_mb, self._cgroups)
        except (OSError, SandboxError) as exc:
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
        self._transition(EnvState.BUSY)
        self._cancel_freeze()
        if self._frozen:
            self._cgroups.thaw()
            self._frozen = False
        rid = invocation.request_id
        init_ms, self._init_ms = self._init_ms, None
        if self._capture is None:
            self._capture = bytearray()
        self._emit(f"START RequestId: {rid} Version: {self.version}\n".encode())
        began = time.perf_counter()
        reply_future = self._channel.dispatch(invocation)
        status = None
        try:
            async with asyncio.timeout(timeout_s):
                reply = await asyncio.shield(reply_future)
        except TimeoutError:
            reply = RuntimeReply(False, _error_payload(
                "Sandbox.Timedout", f"RequestId: {rid} Error: Task timed out after {timeout_s:.2f} seconds"),
                "Sandbox.Timedout")
            self._kill("timeout")
            status = "timeout"
            self._emit(f"{_utc_stamp()} {rid} Task timed out after {timeout_s:.2f} seconds\n".encode())
        duration = (time.perf_counter() - began) * 1000
        self._channel.finish()
        self._drain_output()
        if status is None and self.state is EnvState.DEAD:
            status = "error"
        log = self._end(rid, duration, init_ms, status, reply.error_type)
        if self.state is EnvState.BUSY:
            self._transition(EnvState.IDLE)
            self.last_used = time.monotonic()
            if self._channel.parked:
                self._freeze_soon()
        return Outcome(reply.ok, reply.body, None if reply.ok else (reply.error_type or "Unhandled"),
                       log, duration, init_ms)

    def _report_init_failure(self, invocation: Invocation, failure: RuntimeReply) -> Outcome:
        rid = invocation.request_id
        if self._init_exit is not None:  # the runtime died during init: name the request it failed
            error_type, message = self._init_exit
            failure = RuntimeReply(False, _error_payload(error_type, f"RequestId: {rid} {message}"), error_type)
        init_ms, self._init_ms = self._init_ms, None
        if self._capture is None:
            self._capture = bytearray()
        self._emit(f"START RequestId: {rid} Version: {self.version}\n".encode())
        log = self._end(rid, 0.0, init_ms, "error", failure.error_type)
        return Outcome(False, failure.body, failure.error_type or "Runtime.Unknown", log, 0.0, init_ms)

    def _end(self, rid: str, duration: float, init_ms: float | None, status: str | None,
             error_type: str | None) -> bytes:
        """Write END and REPORT; return the invocation's captured log. The init phase of an
        on-demand environment is billed with its first invocation, as on AWS since 2025-08."""
        self._emit(f"END RequestId: {rid}\n".encode())
        billed = max(1, math.ceil(duration + (init_ms or 0.0)))
        report = (f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {billed} ms\tMemory Size: {self.memory_mb} MB\t"
                  f"Max Memory Used: {self._memory_used() // 1048576} MB\t")
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if status is not None:
            report += f"Status: {status}\t"
            if error_type and status == "error":
                report += f"Error Type: {error_type}\t"
        self._emit(report.encode() + b"\n")
        log = bytes(self._capture or b"")
        self._capture = None
        return log

    def _memory_used(self) -> int:
        if self.state is not EnvState.DEAD:
            self._max_memory = max(self._max_memory, self._cgroups.max_memory_used())
        return self._max_memory

    # -- runtime events -----------------------------------------------------------------------
    async def wait_until_parked(self, timeout_s: float) -> bool:
        """Wait until the runtime asks for its next event: True when it does, False if the
        environment dies first (a runtime may post its answer and then exit) or never asks."""
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
            except OSError:
                pass

    def _process_exited(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._loop.remove_reader(proc.pidfd)
        rc = proc.child.poll()
        self._drain_output()
        if self._exit_reason is None:
            self._exit_reason = self._describe_exit(rc)
        killed = self._exit_reason == "signal: killed"
        error_type = "Runtime.OutOfMemory" if self._cgroups.oom_killed(killed) else "Runtime.ExitError"
        message = self._exit_message(self._exit_reason)
        if not self._init_done.done():
            if self._channel.init_error is None:
                self._init_exit = (error_type, message)
            failure = self._channel.init_error or RuntimeReply(
                False, _error_payload(error_type, message), error_type)
            self._init_done.set_result(failure)
            return
        if self.state is EnvState.BUSY:
            current = self._channel.current
            rid = current.request_id if current else ""
            self._emit(f"RequestId: {rid} {message}\n".encode())
            self._channel.fail(RuntimeReply(False, _error_payload(error_type, f"RequestId: {rid} {message}"),
                                            error_type))
        self._die()

    @staticmethod
    def _describe_exit(rc: int | None) -> str:
        if rc is None:
            return "signal: killed"
        # bwrap reports a child killed by signal N as 128 + N, which a runtime can also
        # exit with on its own (Node's RIC uses 129): only the crash signals are taken as such.
        sig = -rc if rc < 0 else rc - 128
        if sig in _SIGNAL_NAMES and (rc < 0 or rc > 128):
            return f"signal: {_SIGNAL_NAMES[sig]}"
        return f"exit status {rc}"

    @staticmethod
    def _exit_message(reason: str) -> str:
        if reason == "exit status 0":
            return "Error: Runtime exited without providing a reason"
        return f"Error: Runtime exited with error: {reason}"

    # -- output -----------------------------------------------------------------------------------
    def _read_output(self) -> None:
        proc = self._proc
        data = proc.read_output(self._loop) if proc is not None else b""
        if data and (pause := self._emit(data)) > 0.0 and proc is not None and proc.output_fd >= 0:
            # over its log rate: leave the output unread for a while, so that the function's own
            # writes wait (its pipe fills) rather than the server doing the work
            self._loop.remove_reader(proc.output_fd)
            self._output_timer = self._loop.call_later(pause, self._resume_output)

    def _resume_output(self) -> None:
        self._output_timer = None
        proc = self._proc
        if proc is not None and proc.output_fd >= 0 and not self._destroyed:
            self._loop.add_reader(proc.output_fd, self._read_output)

    def _drain_output(self) -> None:
        """Read what is already written (up to a full pipe), so that it lands before END/REPORT."""
        proc = self._proc
        if proc is None or proc.output_fd < 0:
            return
        left = DRAIN_LIMIT_BYTES
        while left > 0:
            try:
                data = os.read(proc.output_fd, left)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            left -= len(data)
            self._emit(data)

    def _emit(self, data: bytes) -> float:
        """Log `data` (and keep it for the tail); returns the log writer's pause (`FunctionLog.write`)."""
        pause = self._log_writer(data)
        if self._capture is not None:
            self._capture += data
            if len(self._capture) > 65536:  # only the tail is ever returned
                del self._capture[:-8192]
        return pause

    # -- teardown ---------------------------------------------------------------------------------
    def _kill(self, reason: str) -> None:
        self._exit_reason = reason
        self._cgroups.kill()
        if self._frozen:
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
            if self._on_dead is not None:
                self._on_dead(self)
        self._release()

    def destroy(self) -> None:
        """Stop the environment and free everything. Idempotent."""
        if self.state is not EnvState.DEAD:
            self._exit_reason = self._exit_reason or "destroyed"
            self._cgroups.kill()
            self._die()
        else:
            self._release()

    def _release(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        if self._output_timer is not None:
            self._output_timer.cancel()
            self._output_timer = None
        if self.zygote is not None:
            self.zygote.live -= 1
        if self._server is not None:
            self._server.close()
        if self._proc is not None:
            self._proc.detach(self._loop)
        self._loop.run_in_executor(None, self._reap)

    def _reap(self) -> None:
        self._cgroups.destroy()
        if self._proc is not None:
            self._proc.reap()
