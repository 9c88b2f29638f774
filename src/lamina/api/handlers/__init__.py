"""The API's handlers, one module per area, and `HANDLERS`: operation name -> handler.

Each area module declares its own `HANDLERS`; they are merged here, and an operation
claimed by two areas stops the import. An operation missing from the registry is answered
with UnknownOperationException by the HTTP edge.

    account        GetAccountSettings
    aliases        Create/Get/Update/Delete/ListAliases
    concurrency    reserved and provisioned concurrency
    event_invoke   Put/Update/Get/Delete/ListFunctionEventInvokeConfigs
    functions      Create/Get/Update/Delete/ListFunctions and their code and configuration
    invoke         Invoke, InvokeAsync
    layers         layer versions
    policies       function and layer version permissions
    runtime_management  Get/PutRuntimeManagementConfig
    tags           Tag/Untag/ListTags
    versions       PublishVersion, ListVersionsByFunction
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.api.handlers import (
    account,
    aliases,
    concurrency,
    event_invoke,
    functions,
    invoke,
    layers,
    policies,
    runtime_management,
    tags,
    versions,
)
from lamina.api.handlers.code import current_code
from lamina.api.handlers.context import Handler, RequestContext, Services

__all__ = ["HANDLERS", "Handler", "RequestContext", "Services", "current_code"]


def _merge(*areas: Mapping[str, Handler]) -> dict[str, Handler]:
    merged: dict[str, Handler] = {}
    for area in areas:
        claimed = merged.keys() & area.keys()
        if claimed:
            raise RuntimeError(f"operations with two handlers: {sorted(claimed)}")
        merged.update(area)
    return merged


HANDLERS: dict[str, Handler] = _merge(
    functions.HANDLERS, versions.HANDLERS, aliases.HANDLERS, layers.HANDLERS, policies.HANDLERS,
    concurrency.HANDLERS, event_invoke.HANDLERS, invoke.HANDLERS, tags.HANDLERS, account.HANDLERS,
    runtime_management.HANDLERS,
)
