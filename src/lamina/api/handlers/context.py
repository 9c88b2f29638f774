"""What every area's handlers share: the services they call, the request's context, the
handler signature, and the parsing steps all areas repeat.

A handler is `async (services, ctx, params) -> output`: `params` and `output` are the model's
CamelCase dicts (see `lamina.api.model`); everything it calls speaks snake_case. A handler
parses, calls a service and renders (`lamina.api.render`): the decisions are the services'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lamina.api import render
from lamina.api.codeurl import CodeUrls
from lamina.control.aliases import AliasService
from lamina.control.concurrency import ConcurrencyService
from lamina.control.event_config import EventInvokeConfigService
from lamina.control.functions import FunctionService
from lamina.control.layers import LayerName, LayerService, layer_name
from lamina.control.policies import LayerPolicyService, PolicyService
from lamina.control.publishing import PublishingService
from lamina.control.runtime_management import RuntimeManagementService
from lamina.control.tags import TagService
from lamina.domain.arns import lambda_arn
from lamina.domain.model import FunctionConfig
from lamina.domain.names import FunctionRef, resolve
from lamina.domain.pagination import Key, paginate
from lamina.errors import ResourceNotFoundException
from lamina.invoke.async_queue import AsyncQueue
from lamina.invoke.invoker import Invoker
from lamina.settings import Settings

__all__ = ["Handler", "Output", "Params", "RequestContext", "Services", "configuration", "function_not_found",
           "function_ref", "layer_ref", "page"]

T = TypeVar("T")
Params = dict[str, Any]
Output = dict[str, Any]
DEFAULT_PAGE_SIZE = 50  # MaxItems when a list request gives none


@dataclass(frozen=True, slots=True)
class RequestContext:
    region: str       # from the request's SigV4 credential scope
    account_id: str
    request_id: str


@dataclass
class Services:
    settings: Settings
    functions: FunctionService
    publishing: PublishingService
    tags: TagService
    concurrency: ConcurrencyService
    aliases: AliasService
    layers: LayerService
    policies: PolicyService
    layer_policies: LayerPolicyService
    invoker: Invoker
    event_config: EventInvokeConfigService
    events: AsyncQueue
    runtime_management: RuntimeManagementService
    code_urls: CodeUrls           # Code.Location / Content.Location
    blob: Callable[[str], bytes]  # a blob's bytes by key; KeyError if absent


Handler = Callable[[Services, RequestContext, Params], Awaitable[Output]]


def function_ref(ctx: RequestContext, p: Params, member: str = "FunctionName") -> FunctionRef:
    """The function (and qualifier) a request names, from `member` and `Qualifier`."""
    return resolve(p[member], p.get("Qualifier"), region=ctx.region, account_id=ctx.account_id)


def configuration(s: Services, cfg: FunctionConfig, *, qualified: bool = False, alias: str | None = None) -> Output:
    """A version's configuration as Create, Get, Update and PublishVersion answer it, with the
    RuntimeVersionConfig it runs on (the list operations leave that out, as AWS does)."""
    return render.function_configuration(cfg, qualified=qualified, alias=alias,
                                         runtime_version=s.functions.runtime_version_arn(cfg))


def layer_ref(ctx: RequestContext, p: Params) -> LayerName:
    return layer_name(p["LayerName"], region=ctx.region, account_id=ctx.account_id)


def page(items: Sequence[T], key: Callable[[T], Key], p: Params, *,
         descending: bool = False) -> tuple[list[T], str | None]:
    """The page of `items` (in `key` order) a list request's Marker and MaxItems ask for, and
    the NextMarker to answer with: every list operation pages through this one scheme."""
    return paginate(items, key, p.get("Marker"), p.get("MaxItems") or DEFAULT_PAGE_SIZE, descending=descending)


def function_not_found(ref: FunctionRef, version: str) -> ResourceNotFoundException:
    """The refusal that names the version it looked for (Invoke and PutFunctionConcurrency
    word it so; Get and Delete name no version)."""
    arn = lambda_arn(ref.region, ref.account_id, "function", ref.name, version)
    return ResourceNotFoundException(f"Function not found: {arn}")
