"""Runtime management: GetRuntimeManagementConfig and PutRuntimeManagementConfig.

Both name one version ($LATEST unless `Qualifier` names a published one; aliases are
refused). FunctionArn is the function's ARN, qualified when the request gave a qualifier;
RuntimeVersionArn is answered only under Manual, as AWS answers it.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services, function_ref
from lamina.domain.model import UpdateRuntimeOn

__all__ = ["HANDLERS"]


async def get_runtime_management_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    return render.runtime_management_config(s.runtime_management.get(ref), ref.arn)


async def put_runtime_management_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    cfg = await s.runtime_management.put(ref, UpdateRuntimeOn(p["UpdateRuntimeOn"]), p.get("RuntimeVersionArn"))
    return render.runtime_management_config(cfg, ref.arn)


HANDLERS: dict[str, Handler] = {
    "GetRuntimeManagementConfig": get_runtime_management_config,
    "PutRuntimeManagementConfig": put_runtime_management_config,
}
