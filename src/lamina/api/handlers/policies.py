"""Resource-based policies: AddPermission, RemovePermission, GetPolicy on functions (and
their versions and aliases), and the same three on layer versions.

The policy services own the statements and their RevisionId preconditions; a statement
comes back as the JSON text AWS answers with.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services, function_ref, layer_ref

__all__ = ["HANDLERS"]


async def add_permission(s: Services, ctx: RequestContext, p: Params) -> Output:
    statement = await s.policies.add(
        function_ref(ctx, p), sid=p["StatementId"], action=p["Action"], principal=p["Principal"],
        source_arn=p.get("SourceArn"), source_account=p.get("SourceAccount"),
        principal_org_id=p.get("PrincipalOrgID"), event_source_token=p.get("EventSourceToken"),
        function_url_auth_type=p.get("FunctionUrlAuthType"), revision_id=p.get("RevisionId"))
    return {"Statement": statement}


async def remove_permission(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.policies.remove(function_ref(ctx, p), p["StatementId"], p.get("RevisionId"))
    return {}


async def get_policy(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.policy(*s.policies.get(function_ref(ctx, p)))


async def add_layer_version_permission(s: Services, ctx: RequestContext, p: Params) -> Output:
    statement, revision_id = await s.layer_policies.add(
        layer_ref(ctx, p), int(p["VersionNumber"]), sid=p["StatementId"], action=p["Action"],
        principal=p["Principal"], organization_id=p.get("OrganizationId"), revision_id=p.get("RevisionId"))
    return {"Statement": statement, "RevisionId": revision_id}


async def remove_layer_version_permission(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.layer_policies.remove(layer_ref(ctx, p), int(p["VersionNumber"]), p["StatementId"], p.get("RevisionId"))
    return {}


async def get_layer_version_policy(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.policy(*await s.layer_policies.get(layer_ref(ctx, p), int(p["VersionNumber"])))


HANDLERS: dict[str, Handler] = {
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
    "GetPolicy": get_policy,
    "AddLayerVersionPermission": add_layer_version_permission,
    "RemoveLayerVersionPermission": remove_layer_version_permission,
    "GetLayerVersionPolicy": get_layer_version_policy,
}
