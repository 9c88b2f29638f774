"""Concurrency: reserved (Put/Get/DeleteFunctionConcurrency) and provisioned
(Put/Get/Delete/ListProvisionedConcurrencyConfigs).

Reserved concurrency belongs to the function; provisioned concurrency to one published
version or alias, and its Available/Allocated counts are the invoker's ready environments.
ListProvisionedConcurrencyConfigs pages by qualifier (the function service's order).
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import (
    Handler,
    Output,
    Params,
    RequestContext,
    Services,
    function_not_found,
    function_ref,
    page,
)
from lamina.domain.model import LATEST, FunctionConfig, ProvisionedSetting
from lamina.errors import ResourceNotFoundException

__all__ = ["HANDLERS"]

_PUT_ON_LATEST = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
_READ_ON_LATEST = "The function resource provided must be an alias or a published version."


def _provisioned(s: Services, version: FunctionConfig, setting: ProvisionedSetting, arn: str | None = None) -> Output:
    return render.provisioned_config(setting, s.invoker.provisioned_available(version), arn=arn)


def _qualifier(config: tuple[str, FunctionConfig, ProvisionedSetting]) -> str:
    return config[0]


async def put_function_concurrency(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    try:
        cfg = await s.concurrency.put_reserved(ref, p["ReservedConcurrentExecutions"])
    except ResourceNotFoundException:  # Put names the version it looked for (recorded from AWS)
        raise function_not_found(ref, LATEST) from None
    return {"ReservedConcurrentExecutions": cfg.reserved_concurrency}


async def get_function_concurrency(s: Services, ctx: RequestContext, p: Params) -> Output:
    return {"ReservedConcurrentExecutions": s.concurrency.get_reserved(function_ref(ctx, p))}


async def delete_function_concurrency(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.concurrency.delete_reserved(function_ref(ctx, p))
    return {}


async def put_provisioned_concurrency_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    qualifier, version = s.concurrency.provisioned_target(function_ref(ctx, p), latest_message=_PUT_ON_LATEST)
    setting = await s.concurrency.put_provisioned(qualifier, version, p["ProvisionedConcurrentExecutions"])
    return _provisioned(s, version, setting)


async def get_provisioned_concurrency_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    qualifier, version = s.concurrency.provisioned_target(function_ref(ctx, p), latest_message=_READ_ON_LATEST)
    return _provisioned(s, version, s.concurrency.get_provisioned(qualifier, version))


async def delete_provisioned_concurrency_config(s: Services, ctx: RequestContext, p: Params) -> Output:
    qualifier, version = s.concurrency.provisioned_target(function_ref(ctx, p), latest_message=_READ_ON_LATEST)
    await s.concurrency.delete_provisioned(qualifier, version)
    return {}


async def list_provisioned_concurrency_configs(s: Services, ctx: RequestContext, p: Params) -> Output:
    configs, marker = page(s.concurrency.list_provisioned(function_ref(ctx, p)), _qualifier, p)
    return {"ProvisionedConcurrencyConfigs": [
        _provisioned(s, version, setting, arn=render.function_arn(version, qualifier))
        for qualifier, version, setting in configs], "NextMarker": marker}


HANDLERS: dict[str, Handler] = {
    "PutFunctionConcurrency": put_function_concurrency,
    "GetFunctionConcurrency": get_function_concurrency,
    "DeleteFunctionConcurrency": delete_function_concurrency,
    "PutProvisionedConcurrencyConfig": put_provisioned_concurrency_config,
    "GetProvisionedConcurrencyConfig": get_provisioned_concurrency_config,
    "DeleteProvisionedConcurrencyConfig": delete_provisioned_concurrency_config,
    "ListProvisionedConcurrencyConfigs": list_provisioned_concurrency_configs,
}
