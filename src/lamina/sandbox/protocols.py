"""The contract between `invoke` and `sandbox`: what an execution environment promises.

`invoke` depends on these protocols and the value types beside them, never on a backend's
modules. Every backend's sandboxes reach `invoke` through `guard.GuardedSandbox`, which
enforces what `Sandbox` says below whatever the backend does.

Sandbox lifecycle (every transition not listed is refused):

    STARTING ──► IDLE ◄──► BUSY
        │          │         │
        └──────────┴────┬────┘
                        ▼
                       DEAD      (terminal)

Semantics every backend keeps:
- `start` never raises for a failure of the sandbox or of the function's init: the sandbox
  is DEAD afterwards and its first `invoke` reports the failure, as AWS reports an init
  failure with the invocation that met it;
- `invoke` runs one invocation at a time, on an IDLE sandbox; function errors, timeouts,
  crashes, OOM kills and OS failures come back as an `Outcome`, never as exceptions; it
  ends IDLE or DEAD;
- `destroy` is idempotent, and after DEAD every call is a harmless no-op; `on_dead` runs
  exactly once, when the sandbox becomes DEAD for whatever reason; what it held (processes,
  cgroups, /tmp) is released right after, off the event loop;
- everything is called on the event loop thread and nothing blocks it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lamina.domain.model import FunctionKey, VersionKey
from lamina.runtimeapi.channel import Invocation, RuntimeReply


class EnvState(enum.StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one invocation as the platform saw it."""

    ok: bool
    payload: bytes
    error_type: str | None   # an `exits.ErrorType`, or the type the function reported
    log: bytes               # what the invocation logged (its tail is what LogType=Tail returns)
    duration_ms: float
    init_duration_ms: float | None


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    """What one new environment runs and sees."""

    id: str                          # unique among live environments; names its cgroups
    template: VersionKey             # environments of one template may fork from one zygote
    generation: int                  # the template's configuration; a zygote serves one
    code_dir: Path                   # read-only at /var/task
    argv: tuple[str, ...]            # the runtime command, as seen inside
    env: dict[str, str]              # the configuration's variables (its zygote gets them too)
    memory_mb: int
    tmp_mb: int
    instance_env: dict[str, str] = field(default_factory=dict)  # this environment's alone
    opt_dir: Path | None = None      # read-only at /opt
    runtime_dir: Path | None = None  # read-only at /var/runtime
    root: Path | None = None         # a runtime image, read-only at / (None: the host's /usr)
    init_log: str = ""               # the platform's lines at the start of each cold start (INIT_START)
    bytecode: tuple[tuple[str, str], ...] = ()  # (host path, path inside): compiled code, read-only
    zygote_argv: tuple[str, ...] | None = None  # how to start the template's zygote, if it may have one


class Sandbox(Protocol):
    """One execution environment (see the module docstring for the semantics)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> EnvState: ...
    @property
    def generation(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def last_used(self) -> float: ...        # time.monotonic() of its last invocation's end
    @property
    def tmp_on_disk(self) -> bool: ...       # False: its /tmp is a tmpfs, charged to its memory
    @property
    def forked(self) -> bool: ...            # started as a fork of its template's zygote
    @property
    def provisioned(self) -> bool: ...

    def mark_provisioned(self, provisioned: bool = True) -> None:
        """Kept warm ahead of traffic (its owner never reaps it): its first invocation
        reports no Init Duration, as on AWS."""

    async def start(self, *, fork: bool = False) -> RuntimeReply | None:
        """STARTING → IDLE (None) or DEAD (the init failure). `fork`: start as a fork of the
        template's zygote when the backend can (else afresh)."""

    async def fail_start(self, failure: RuntimeReply, init_ms: float | None = 0.0) -> None:
        """→ DEAD without (more of) a start: the first invoke reports `failure`, with `init_ms`
        as its Init Duration (None: none). A no-op once DEAD."""

    async def wait_until_parked(self, timeout_s: float) -> bool:
        """True once the runtime waits for its next event; False if the sandbox dies first or
        the runtime never asks within `timeout_s` (the sandbox is then destroyed)."""

    async def invoke(self, invocation: Invocation, timeout_s: float) -> Outcome:
        """Run one invocation (IDLE → BUSY → IDLE or DEAD), or report the init failure."""

    def destroy(self) -> None:
        """Stop the sandbox and release what it holds. Idempotent."""


class SandboxProvider(Protocol):
    """Makes sandboxes of one backend and keeps what they share (zygotes, /tmp volumes)."""

    @property
    def tmp_on_disk(self) -> bool:
        """Whether environments' /tmp can live on disk; else it is a tmpfs charged to memory."""

    async def start(self) -> None:
        """Clean up what an earlier run left and get ready (before the first `create`)."""

    async def close(self) -> None:
        """Stop every zygote and release shared resources (sandboxes are destroyed by their owner)."""

    async def create(self, request: SandboxRequest, *, log: Callable[[bytes], float],
                     on_dead: Callable[[], None]) -> Sandbox:
        """A new STARTING sandbox for `request`. `log` gets its output and its invocations'
        START/END/REPORT lines and answers how long to leave the output unread (the log's
        rate limit); `on_dead` runs once when it becomes DEAD."""

    def retire(self, template: VersionKey, generation: int | None = None) -> None:
        """`template`'s sandboxes of generations other than `generation` (None: of any) will
        not be asked for again: its zygote stops once the environments it forked have ended."""

    def reap(self, idle_since: float) -> None:
        """Stop zygotes unused since `idle_since` (time.monotonic()) with no environment left."""

    def zygotes_ready(self, function: FunctionKey) -> int:
        """How many of `function`'s zygotes are ready to fork (for the status document)."""
