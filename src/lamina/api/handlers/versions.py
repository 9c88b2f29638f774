"""Versions: PublishVersion and ListVersionsByFunction.

A listing is $LATEST, then the published versions by number (the function service's order);
it pages on that order, $LATEST counting as version 0.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import (
    Handler,
    Output,
    Params,
    RequestContext,
    Services,
    configuration,
    function_ref,
    page,
)
from lamina.domain.model import LATEST, FunctionConfig

__all__ = ["HANDLERS"]


def _version_order(cfg: FunctionConfig) -> int:
    return 0 if cfg.version == LATEST else int(cfg.version)


async def publish_version(s: Services, ctx: RequestContext, p: Params) -> Output:
    cfg = await s.publishing.publish(function_ref(ctx, p), code_sha256=p.get("CodeSha256"),
                                     revision_id=p.get("RevisionId"), description=p.get("Description"))
    return configuration(s, cfg)


async def list_versions_by_function(s: Services, ctx: RequestContext, p: Params) -> Output:
    # listed configurations have no RuntimeVersionConfig (recorded from AWS)
    versions, marker = page(s.functions.versions(function_ref(ctx, p)), _version_order, p)
    return {"Versions": [render.function_configuration(c, qualified=True) for c in versions], "NextMarker": marker}


HANDLERS: dict[str, Handler] = {
    "PublishVersion": publish_version,
    "ListVersionsByFunction": list_versions_by_function,
}
