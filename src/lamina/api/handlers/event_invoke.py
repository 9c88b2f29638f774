"""Asynchronous invocation settings: Put/Update/Get/Delete/ListFunctionEventInvokeConfigs.

The event-config service answers with (qualified function ARN, setting) pairs, listed
$LATEST first, then versions by number, then aliases by name; a listing pages on that order.
"""

from __future__ import annotations

from typing import Any

from lamina.api import render
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services, function_ref, page
from lamina.domain.arns import parse_arn
from lamina.domain.model import LATEST, EventInvokeSetting

__all__ = ["HANDLERS"]


def qualifier_order(qualifier: str) -> str:
    """A text key that sorts qualifiers as the listing does: $LATEST, versions by number
    (zero-padded, so that 10 follows 9), aliases by name (which are never all digits)."""
    if qualifier == LATEST:
        return "0"
    if qualifier.isdigit():
        return f"1{int(qualifier):020d}"
    return f"2{qualifier}"


def _order(config: tuple[str, EventInvokeSetting]) -> str:
    arn = parse_arn(config[0])
    return qualifier_order(arn.qualifier if arn is not None and arn.qualifier is not None else LATEST)


def _changes(p: Params) -> dict[str, Any]:
    return {"retries": p.get("MaximumRetryAttempts"), "max_age": p.get("MaximumEventAgeInSeconds"),
            "destinations": p.get("DestinationConfig")}


async def put_function_event_invoke_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.event_invoke_config(*await s.event_config.put(function_ref(ctx, p), **_changes(p)))


async def update_function_event_invoke_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.event_invoke_config(*await s.event_config.update(function_ref(ctx, p), **_changes(p)))


async def get_function_event_invoke_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.event_invoke_config(*s.event_config.get(function_ref(ctx, p)))


async def delete_function_event_invoke_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.event_config.delete(function_ref(ctx, p))
    return {}


async def list_function_event_invoke_configs(s: Services, ctx: RequestContext, p: Params) -> Output:
    configs, marker = page(s.event_config.list(function_ref(ctx, p)), _order, p)
    return {"FunctionEventInvokeConfigs": [render.event_invoke_config(arn, c) for arn, c in configs],
            "NextMarker": marker}


HANDLERS: dict[str, Handler] = {
    "PutFunctionEventInvokeConfig": put_function_event_invoke_config,
    "UpdateFunctionEventInvokeConfig": update_function_event_invoke_config,
    "GetFunctionEventInvokeConfig": get_function_event_invoke_config,
    "DeleteFunctionEventInvokeConfig": delete_function_event_invoke_config,
    "ListFunctionEventInvokeConfigs": list_function_event_invoke_configs,
}
