"""The one wrapper every backend's sandboxes are handed out in, over a backend that fails on cue.

The backend here is a stand-in for a real one's sandbox at the protocol seam: what is under
test is the wrapper's promise (failures as values, idempotent destroy), not a backend.
"""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess

import pytest

from lamina.errors import SandboxError
from lamina.runtimeapi.channel import Invocation, RuntimeReply
from lamina.sandbox.guard import GuardedSandbox
from lamina.sandbox.protocols import EnvState, Outcome


class Backend:
    """A backend sandbox whose OS calls raise `error` in the step named `failing`."""

    def __init__(self, failing: str = "", error: BaseException | None = None) -> None:
        self.id, self.generation, self.memory_mb, self.last_used = "env-1", 1, 128, 0.0
        self.tmp_on_disk = self.forked = self.provisioned = False
        self.state = EnvState.STARTING
        self.failing, self.error = failing, error or OSError(errno.ENOSPC, "No space left on device")
        self.failure: tuple[RuntimeReply, float | None] | None = None
        self.destroyed = 0

    def mark_provisioned(self, provisioned: bool = True) -> None:
        self.provisioned = provisioned

    def _step(self, name: str) -> None:
        if self.failing == name:
            raise self.error

    async def start(self, *, fork: bool = False) -> RuntimeReply | None:
        self._step("start")
        self.state = EnvState.IDLE
        return None

    async def fail_start(self, failure: RuntimeReply, init_ms: float | None = 0.0) -> None:
        self.failure = (failure, init_ms)
        self.state = EnvState.DEAD

    async def wait_until_parked(self, timeout_s: float) -> bool:
        self._step("park")
        return True

    async def invoke(self, invocation: Invocation, timeout_s: float) -> Outcome:
        self.state = EnvState.BUSY
        self._step("invoke")
        self.state = EnvState.IDLE
        return Outcome(True, b"{}", None, b"", 1.0, None)

    def destroy(self) -> None:
        self.destroyed += 1
        self.state = EnvState.DEAD
        self._step("destroy")


INVOCATION = Invocation(request_id="r-1", payload=b"{}", deadline_ms=0, invoked_function_arn="arn", trace_id="t")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), SandboxError("bwrap failed"),
                                   subprocess.TimeoutExpired("mkfs.ext4", 60)])
def test_a_start_that_fails_becomes_the_init_failure(error: BaseException) -> None:
    backend = Backend("start", error)
    failure = asyncio.run(GuardedSandbox(backend).start())
    assert failure is not None and failure.error_type == "Runtime.Unknown"
    assert json.loads(failure.body)["errorMessage"].startswith("could not start environment: ")
    assert backend.failure == (failure, None)   # reported by its first invoke, with no Init Duration


def test_an_invoke_that_fails_is_an_outcome_and_the_sandbox_is_destroyed() -> None:
    backend = Backend("invoke", PermissionError(errno.EACCES, "cgroup.freeze"))
    sandbox = GuardedSandbox(backend)
    asyncio.run(sandbox.start())
    outcome = asyncio.run(sandbox.invoke(INVOCATION, 3.0))
    assert not outcome.ok and outcome.error_type == "Runtime.Unknown"
    assert json.loads(outcome.payload)["errorMessage"].startswith("RequestId: r-1 Error: ")
    assert sandbox.state is EnvState.DEAD and backend.destroyed == 1


def test_waiting_for_a_runtime_that_fails_is_false() -> None:
    sandbox = GuardedSandbox(Backend("park"))
    assert asyncio.run(sandbox.wait_until_parked(1.0)) is False
    assert sandbox.state is EnvState.DEAD


def test_destroy_is_idempotent_and_never_raises() -> None:
    backend = Backend("destroy")
    sandbox = GuardedSandbox(backend)
    sandbox.destroy()                 # the backend's error is logged, not raised
    sandbox.destroy()                 # and after DEAD nothing reaches the backend
    assert backend.destroyed == 1 and sandbox.state is EnvState.DEAD


def test_bugs_are_not_sandbox_failures() -> None:
    sandbox = GuardedSandbox(Backend("invoke", KeyError("a bug")))
    with pytest.raises(KeyError):
        asyncio.run(sandbox.invoke(INVOCATION, 3.0))
