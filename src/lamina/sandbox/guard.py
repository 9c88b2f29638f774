"""The one wrapper every backend's sandboxes are handed out in: it enforces `protocols.Sandbox`.

Whatever a backend lets escape of the OS (OSError, a subprocess error, its own
SandboxError) is translated here and nowhere else: a failed start becomes the init failure
its first invocation reports, a failed invocation an `Outcome` of type Runtime.Unknown,
and the sandbox is destroyed. `destroy` is a no-op once the sandbox is DEAD and never
raises. Bugs (any other exception) are not caught: they are bugs, not sandbox failures.
"""

from __future__ import annotations

import logging
import subprocess

from lamina.errors import SandboxError
from lamina.runtimeapi.channel import Invocation, RuntimeReply
from lamina.sandbox import exits
from lamina.sandbox.exits import ErrorType
from lamina.sandbox.protocols import EnvState, Outcome, Sandbox

log = logging.getLogger("lamina.sandbox")

OS_ERRORS = (OSError, subprocess.SubprocessError, SandboxError)


def translated(exc: BaseException) -> SandboxError:
    """`exc` as the SandboxError it means (raise it `from exc`)."""
    if isinstance(exc, SandboxError):
        return exc
    error = SandboxError(str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


class GuardedSandbox:
    __slots__ = ("_inner",)

    def __init__(self, inner: Sandbox) -> None:
        self._inner = inner

    @property
    def id(self) -> str:
        return self._inner.id

    @property
    def state(self) -> EnvState:
        return self._inner.state

    @property
    def generation(self) -> int:
        return self._inner.generation

    @property
    def memory_mb(self) -> int:
        return self._inner.memory_mb

    @property
    def last_used(self) -> float:
        return self._inner.last_used

    @property
    def tmp_on_disk(self) -> bool:
        return self._inner.tmp_on_disk

    @property
    def forked(self) -> bool:
        return self._inner.forked

    @property
    def provisioned(self) -> bool:
        return self._inner.provisioned

    def mark_provisioned(self, provisioned: bool = True) -> None:
        self._inner.mark_provisioned(provisioned)

    async def start(self, *, fork: bool = False) -> RuntimeReply | None:
        try:
            return await self._inner.start(fork=fork)
        except OS_ERRORS as exc:
            failure = exits.failure(ErrorType.UNKNOWN, f"could not start environment: {translated(exc)}")
            await self._inner.fail_start(failure, init_ms=None)
            return failure

    async def fail_start(self, failure: RuntimeReply, init_ms: float | None = 0.0) -> None:
        await self._inner.fail_start(failure, init_ms)

    async def wait_until_parked(self, timeout_s: float) -> bool:
        try:
            return await self._inner.wait_until_parked(timeout_s)
        except OS_ERRORS as exc:
            self._failed("waiting for its runtime", exc)
            return False

    async def invoke(self, invocation: Invocation, timeout_s: float) -> Outcome:
        try:
            return await self._inner.invoke(invocation, timeout_s)
        except OS_ERRORS as exc:
            self._failed("running an invocation", exc)
            message = f"RequestId: {invocation.request_id} Error: {translated(exc)}"
            return Outcome(False, exits.error_payload(ErrorType.UNKNOWN, message), ErrorType.UNKNOWN, b"", 0.0, None)

    def destroy(self) -> None:
        if self._inner.state is EnvState.DEAD:
            return
        try:
            self._inner.destroy()
        except OS_ERRORS as exc:
            log.warning("environment %s did not stop cleanly: %s", self._inner.id, translated(exc))

    def _failed(self, doing: str, exc: BaseException) -> None:
        log.warning("environment %s failed %s: %s", self._inner.id, doing, translated(exc))
        self.destroy()
