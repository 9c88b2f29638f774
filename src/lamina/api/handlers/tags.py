"""Tags: TagResource, UntagResource, ListTags.

A resource is named by ARN; the model's pattern admits only function ARNs (a qualifier, if
any, is the function service's to refuse), so tags belong to functions alone for now.
"""

from __future__ import annotations

from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services
from lamina.domain.names import FunctionRef, resolve

__all__ = ["HANDLERS"]


def _resource(ctx: RequestContext, p: Params) -> FunctionRef:
    return resolve(p["Resource"], None, region=ctx.region, account_id=ctx.account_id)


async def tag_resource(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.tags.tag(_resource(ctx, p), dict(p["Tags"]))
    return {}


async def untag_resource(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.tags.untag(_resource(ctx, p), list(p["TagKeys"]))
    return {}


async def list_tags(s: Services, ctx: RequestContext, p: Params) -> Output:
    return {"Tags": s.tags.tags(_resource(ctx, p))}


HANDLERS: dict[str, Handler] = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTags": list_tags,
}
