"""Invoke (RequestResponse, Event, DryRun) and the deprecated InvokeAsync.

The hot path: checks in AWS's order (payload size, the function and qualifier, the payload
as JSON, the client context, the function's state), then one call to the invoker or the
asynchronous queue. The function receives the client's payload bytes unchanged, never a
re-serialisation; a function's failure comes back as a value in the result.
"""

from __future__ import annotations

import base64
import binascii

from lamina.api import jsonbody, render
from lamina.api.handlers.context import (
    Handler,
    Output,
    Params,
    RequestContext,
    Services,
    function_not_found,
    function_ref,
)
from lamina.api.limits import MAX_EVENT_BYTES, MAX_INVOKE_BYTES, too_large
from lamina.domain.messages import function_not_ready
from lamina.domain.model import LATEST, FunctionConfig, FunctionState
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidRequestContentException,
    ResourceConflictException,
    ResourceNotFoundException,
    ResourceNotReadyException,
)

__all__ = ["HANDLERS"]


def _client_context(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True)
        jsonbody.loads(decoded)
        return decoded.decode()
    except (binascii.Error, UnicodeDecodeError, InvalidRequestContentException):
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object.") from None


def _checked_payload(payload: bytes) -> bytes:
    """The payload, unchanged, once it is known to be JSON as AWS reads it (none: `{}`)."""
    if not payload:
        return b"{}"
    jsonbody.loads(payload)
    return payload


def _route(s: Services, ref: FunctionRef) -> FunctionConfig:
    """The version an invocation of `ref` runs; Invoke's refusal names the version it looked for."""
    try:
        return s.functions.route(ref)
    except ResourceNotFoundException:
        raise function_not_found(ref, ref.qualifier or LATEST) from None


async def invoke(s: Services, ctx: RequestContext, p: Params) -> Output:
    payload: bytes = p.get("Payload") or b""
    invocation_type = p.get("InvocationType") or "RequestResponse"
    limit = MAX_EVENT_BYTES if invocation_type == "Event" else MAX_INVOKE_BYTES
    if len(payload) > limit:
        raise too_large(limit, "InvokeFunction")
    ref = function_ref(ctx, p)
    cfg = _route(s, ref)
    payload = _checked_payload(payload)
    client_context = _client_context(p.get("ClientContext"))
    if not cfg.ready:
        if cfg.state is FunctionState.PENDING:
            raise ResourceConflictException(function_not_ready("Pending"))
        if cfg.state is FunctionState.FAILED:
            raise ResourceNotReadyException(
                f"The function is in a failed state and cannot be invoked: {cfg.state_reason or ''}".strip())
    if invocation_type == "DryRun":
        return {"StatusCode": 204}
    if invocation_type == "Event":
        await s.events.accept(ref, payload, request_id=ctx.request_id, client_context=client_context)
        return {"StatusCode": 202}
    result = await s.invoker.invoke(cfg, payload, client_context=client_context, request_id=ctx.request_id,
                                    invoked_arn=ref.arn, tail_log=p.get("LogType") == "Tail")
    return render.invocation(result)


async def invoke_async(s: Services, ctx: RequestContext, p: Params) -> Output:
    """The deprecated InvokeAsync: an Event invoke of $LATEST (or the qualifier in the name)."""
    payload: bytes = p.get("InvokeArgs") or b""
    if len(payload) > MAX_EVENT_BYTES:
        raise too_large(MAX_EVENT_BYTES, "InvokeFunction")
    ref = function_ref(ctx, p)
    _route(s, ref)
    await s.events.accept(ref, _checked_payload(payload), request_id=ctx.request_id, client_context=None)
    return {"Status": 202}


HANDLERS: dict[str, Handler] = {
    "Invoke": invoke,
    "InvokeAsync": invoke_async,
}
