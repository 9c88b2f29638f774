"""Why an environment's runtime ended, and the error type the invocation reports for it.

The platform's error types are a closed set (`ErrorType`), as AWS's wire error types are;
a function's own error types (what its runtime posts to `/error`) pass through as text. An
`Exit` is what ended the runtime: it exited with a status, a signal killed it, or Lamina
stopped it (timeout, destroy). Both are values; nothing here compares text.
"""

from __future__ import annotations

import enum
import json
import signal
from dataclasses import dataclass

from lamina.runtimeapi.channel import RuntimeReply

# The crash signals reported by name; any other status is reported as the number it is.
_SIGNAL_NAMES = {signal.SIGABRT: "aborted", signal.SIGBUS: "bus error", signal.SIGKILL: "killed",
                 signal.SIGSEGV: "segmentation fault"}


class ErrorType(enum.StrEnum):
    """The platform's error types, as the wire spells them."""

    EXIT = "Runtime.ExitError"
    OUT_OF_MEMORY = "Runtime.OutOfMemory"
    TIMED_OUT = "Sandbox.Timedout"
    UNKNOWN = "Runtime.Unknown"
    INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    UNHANDLED = "Unhandled"  # the function failed without naming a type


class ExitKind(enum.Enum):
    EXITED = "exited"          # `code` is its exit status
    SIGNALLED = "signalled"    # `code` is the signal
    TIMED_OUT = "timed out"    # Lamina killed it at the invocation's timeout
    DESTROYED = "destroyed"    # Lamina stopped it (reaped, evicted, deleted, shutting down)


@dataclass(frozen=True, slots=True)
class Exit:
    kind: ExitKind
    code: int = 0

    @property
    def sigkilled(self) -> bool:
        return self.kind is ExitKind.SIGNALLED and self.code == signal.SIGKILL

    def __str__(self) -> str:
        if self.kind is ExitKind.EXITED:
            return f"exit status {self.code}"
        if self.kind is ExitKind.SIGNALLED:
            return f"signal: {_SIGNAL_NAMES[signal.Signals(self.code)]}"
        return "timeout" if self.kind is ExitKind.TIMED_OUT else "destroyed"


TIMED_OUT = Exit(ExitKind.TIMED_OUT)
DESTROYED = Exit(ExitKind.DESTROYED)


def from_status(rc: int | None) -> Exit:
    """The exit of a first process whose status is `rc` (None: it was killed, no status)."""
    if rc is None:
        return Exit(ExitKind.SIGNALLED, signal.SIGKILL)
    # bwrap reports a child killed by signal N as 128 + N, which a runtime can also exit
    # with on its own (Node's RIC uses 129): only the crash signals are taken as such
    sig = -rc if rc < 0 else rc - 128
    if sig in _SIGNAL_NAMES and (rc < 0 or rc > 128):
        return Exit(ExitKind.SIGNALLED, sig)
    return Exit(ExitKind.EXITED, rc)


def message(exit: Exit) -> str:
    if exit == Exit(ExitKind.EXITED, 0):
        return "Error: Runtime exited without providing a reason"
    return f"Error: Runtime exited with error: {exit}"


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def failure(error_type: ErrorType, message: str) -> RuntimeReply:
    """A reply the runtime never gave: the platform's own failure of an invocation or an init."""
    return RuntimeReply(False, error_payload(error_type, message), error_type)
