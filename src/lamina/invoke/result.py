"""What an invocation returns to its caller: a value, whether the function succeeded or not.

Function failures (an error the function reported, a timeout, a crash, an environment that
could not start) are carried here with their wire error type; only throttles and failures
of the platform itself are exceptions.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lamina.observe.logs import tail
from lamina.sandbox.protocols import Outcome


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

    @classmethod
    def of(cls, outcome: Outcome, *, version: str, request_id: str, tail_log: bool) -> InvokeResult:
        return cls(
            payload=outcome.payload,
            function_error=None if outcome.ok else "Unhandled",
            error_type=outcome.error_type,
            log_result=base64.b64encode(tail(outcome.log)).decode() if tail_log else None,
            executed_version=version,
            request_id=request_id,
            duration_ms=outcome.duration_ms,
            init_duration_ms=outcome.init_duration_ms,
        )
