"""Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.

An alias is rendered with its function's unqualified ARN (`render.alias_configuration`), so
the alias service answers with $LATEST beside the alias. A listing pages by alias name.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services, function_ref, page
from lamina.domain.model import Alias

__all__ = ["HANDLERS"]


def _routing(p: Params) -> dict[str, float] | None:
    """RoutingConfig: absent -> unchanged (None); present without weights -> no routing ({})."""
    config = p.get("RoutingConfig")
    return None if config is None else dict(config.get("AdditionalVersionWeights") or {})


def _name(alias: Alias) -> str:
    return alias.name


async def create_alias(s: Services, ctx: RequestContext, p: Params) -> Output:
    latest, alias = await s.aliases.create(function_ref(ctx, p), p["Name"], p["FunctionVersion"], p.get("Description"),
                                     _routing(p))
    return render.alias_configuration(latest, alias)


async def get_alias(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.alias_configuration(*s.aliases.get(function_ref(ctx, p), p["Name"]))


async def update_alias(s: Services, ctx: RequestContext, p: Params) -> Output:
    latest, alias = await s.aliases.update(function_ref(ctx, p), p["Name"], version=p.get("FunctionVersion"),
                                     description=p.get("Description"), routing=_routing(p),
                                     revision_id=p.get("RevisionId"))
    return render.alias_configuration(latest, alias)


async def delete_alias(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.aliases.delete(function_ref(ctx, p), p["Name"])
    return {}


async def list_aliases(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    latest = s.functions.latest(ref)
    aliases, marker = page(s.aliases.list(ref, p.get("FunctionVersion")), _name, p)
    return {"Aliases": [render.alias_configuration(latest, a) for a in aliases], "NextMarker": marker}


HANDLERS: dict[str, Handler] = {
    "CreateAlias": create_alias,
    "GetAlias": get_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
}
