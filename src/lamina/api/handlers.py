"""One handler per Lambda operation: take the parsed input, call one service, return output.

Inputs and outputs are the model's CamelCase dicts; everything below speaks snake_case.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lamina.api import jsonbody, render
from lamina.api.codeurl import CodeUrls
from lamina.control.aliases import AliasService
from lamina.control.event_config import EventInvokeConfigService
from lamina.control.functions import FunctionService
from lamina.control.layers import LayerName, LayerService, layer_name
from lamina.control.policies import LayerPolicyService, PolicyService
from lamina.domain.arns import parse_arn
from lamina.domain.messages import function_not_ready
from lamina.domain.model import EventInvokeSetting, FunctionConfig, ProvisionedSetting
from lamina.domain.names import FunctionRef, resolve
from lamina.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    ResourceNotReadyException,
)
from lamina.invoke.async_queue import AsyncQueue
from lamina.invoke.invoker import Invoker
from lamina.settings import Settings

MAX_INVOKE_REQUEST_BYTES = 6_291_456
MAX_ASYNC_REQUEST_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class RequestContext:
    region: str
    account_id: str
    request_id: str


@dataclass
class Services:
    settings: Settings
    functions: FunctionService
    aliases: AliasService
    layers: LayerService
    policies: PolicyService
    layer_policies: LayerPolicyService
    invoker: Invoker
    event_config: EventInvokeConfigService
    events: AsyncQueue
    code_urls: CodeUrls          # Code.Location / Content.Location
    blob: Callable[[str], bytes]  # a blob's bytes by key; KeyError if absent


Handler = Callable[[Services, RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]


def _ref(ctx: RequestContext, params: dict[str, Any]) -> FunctionRef:
    return resolve(params["FunctionName"], params.get("Qualifier"), region=ctx.region, account_id=ctx.account_id)


async def create_function(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    code = p.get("Code") or {}
    if p.get("PackageType") == "Image" or code.get("ImageUri"):
        raise InvalidParameterValueException("Container image functions are not supported by Lamina yet; "
                                             "deploy a .zip file archive.")
    if "ZipFile" not in code:
        if code.get("S3Bucket") or code.get("S3Key"):
            raise InvalidParameterValueException(
                "Lamina does not read code from S3 yet; upload the deployment package with ZipFile.")
        raise InvalidParameterValueException("Please provide a source for function code.")
    ref = _ref(ctx, p)
    if ref.qualifier is not None:
        raise InvalidParameterValueException("Unsupported function name: a qualifier is not allowed here.")
    cfg = await s.functions.create(
        ref, zip_file=code["ZipFile"], runtime=p.get("Runtime"), handler=p.get("Handler"), role=p["Role"],
        tags=dict(p.get("Tags") or {}), layers=_layers(s, ctx, p), dead_letter_arn=_dead_letter(s, p),
        **_config_changes(p),
    )
    return render.function_configuration(cfg)


def _dead_letter(s: Services, p: dict[str, Any]) -> str | None:
    """DeadLetterConfig: absent -> unchanged (None); an empty TargetArn removes it ("")."""
    config = p.get("DeadLetterConfig")
    if config is None:
        return None
    target = config.get("TargetArn") or ""
    s.event_config.check_dead_letter(target)
    return target


def _layers(s: Services, ctx: RequestContext, p: dict[str, Any]) -> tuple[Any, ...] | None:
    arns = p.get("Layers")
    return None if arns is None else s.layers.resolve_for_function(list(arns), ctx.region)


def _config_changes(p: dict[str, Any]) -> dict[str, Any]:
    env = p.get("Environment")
    storage = p.get("EphemeralStorage")
    tracing = p.get("TracingConfig")
    arch = p.get("Architectures")
    return {
        "description": p.get("Description"),
        "timeout": p.get("Timeout"),
        "memory_size": p.get("MemorySize"),
        "environment": dict(env.get("Variables") or {}) if env is not None else None,
        "ephemeral_storage": storage["Size"] if storage else None,
        "tracing_mode": tracing.get("Mode") if tracing else None,
        "architectures": tuple(arch) if arch else None,
        "kms_key_arn": p.get("KMSKeyArn") or None,
        **_logging(p.get("LoggingConfig")),
    }


def _logging(config: dict[str, Any] | None) -> dict[str, Any]:
    """LoggingConfig: JSON format brings AWS's default levels (INFO for the application,
    INFO for the system) unless given."""
    if not config:
        return {}
    log_format = config.get("LogFormat") or "Text"
    json_format = log_format == "JSON"
    return {
        "log_format": log_format,
        "application_log_level": (config.get("ApplicationLogLevel") or "INFO") if json_format else None,
        "system_log_level": (config.get("SystemLogLevel") or "INFO") if json_format else None,
        "log_group": config.get("LogGroup"),
    }


def _alias_name(ref: FunctionRef) -> str | None:
    qualifier = ref.qualifier
    return qualifier if qualifier and qualifier != "$LATEST" and not qualifier.isdigit() else None


async def get_function(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = _ref(ctx, p)
    cfg = s.functions.get(ref)
    out: dict[str, Any] = {
        "Configuration": render.function_configuration(cfg, alias=_alias_name(ref)),
        "Code": {"RepositoryType": "S3", "Location": s.code_urls.issue(cfg.qualified_arn, cfg.code.blob_key)},
    }
    latest = s.functions.latest(ref)
    if latest.reserved_concurrency is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": latest.reserved_concurrency}
    if latest.tags:
        out["Tags"] = dict(latest.tags)
    return out


def current_code(s: Services, owner: str) -> str | None:
    """The blob key the owner of a code URL (a qualified function or layer version ARN, as
    `get_function` and `_layer_version_output` issue them) holds now; None once it is gone."""
    arn = parse_arn(owner)  # arn:aws:lambda:region:account:(function|layer):name:(qualifier|version)
    if arn is None or len(arn.resource) != 3:
        return None
    region, account, (kind, name, qualifier) = arn.region, arn.account, arn.resource
    try:
        if kind == "function":
            return s.functions.get(FunctionRef(account, region, name, qualifier)).code.blob_key
        if kind == "layer" and qualifier.isdigit():
            return s.layers.get(LayerName(account, region, name), int(qualifier)).code.blob_key
    except (ResourceNotFoundException, InvalidParameterValueException):
        pass
    return None


async def get_function_configuration(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = _ref(ctx, p)
    return render.function_configuration(s.functions.get(ref), alias=_alias_name(ref))


async def list_functions(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    max_items = p.get("MaxItems") or 50
    page, marker = s.functions.list_page(ctx.account_id, ctx.region, p.get("Marker"), min(max_items, 10_000))
    return {"Functions": [render.function_configuration(c) for c in page], "NextMarker": marker}


async def update_function_code(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    if "ZipFile" not in p:
        if p.get("S3Bucket") or p.get("S3Key"):
            raise InvalidParameterValueException(
                "Lamina does not read code from S3 yet; upload the deployment package with ZipFile.")
        if p.get("ImageUri"):
            raise InvalidParameterValueException(
                "Please don't provide ImageUri when updating a function with packageType Zip.")
        raise InvalidParameterValueException("Please provide a source for function code.")
    cfg = await s.functions.update_code(_ref(ctx, p), p["ZipFile"], p.get("RevisionId"))
    return render.function_configuration(cfg)


async def update_function_configuration(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    changes = _config_changes(p)
    changes.pop("architectures")
    cfg = await s.functions.update_configuration(
        _ref(ctx, p), p.get("RevisionId"), runtime=p.get("Runtime"), handler=p.get("Handler"),
        role=p.get("Role"), layers=_layers(s, ctx, p), dead_letter_arn=_dead_letter(s, p), **changes)
    return render.function_configuration(cfg)


async def delete_function(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    await s.functions.delete(_ref(ctx, p))
    return {"StatusCode": 204}


async def get_account_settings(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    functions = [c for c in s.functions.all() if c.account_id == ctx.account_id]
    return {
        "AccountLimit": {
            "TotalCodeSize": 80_530_636_800,
            "CodeSizeUnzipped": 262_144_000,
            "CodeSizeZipped": 52_428_800,
            "ConcurrentExecutions": s.functions.concurrency_limit,
            "UnreservedConcurrentExecutions": s.functions.unreserved_concurrency(ctx.account_id),
        },
        "AccountUsage": {"TotalCodeSize": sum(c.code.size for c in functions), "FunctionCount": len(functions)},
    }


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


def _check_payload(payload: bytes) -> bytes:
    """The payload, unchanged, once it is known to be JSON as AWS reads it; the function gets the
    client's bytes, never a re-serialisation."""
    if not payload:
        return b"{}"
    jsonbody.loads(payload)
    return payload


async def invoke(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    payload: bytes = p.get("Payload") or b""
    invocation_type = p.get("InvocationType") or "RequestResponse"
    limit = MAX_ASYNC_REQUEST_BYTES if invocation_type == "Event" else MAX_INVOKE_REQUEST_BYTES
    if len(payload) > limit:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation")
    ref = _ref(ctx, p)
    try:
        cfg = s.functions.route(ref)
    except ResourceNotFoundException:
        # Invoke names the version it looked for, unlike Get/Delete
        raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:{ref.qualifier or '$LATEST'}") \
            from None
    payload = _check_payload(payload)
    client_context = _client_context(p.get("ClientContext"))
    if not cfg.ready:
        if cfg.state.value == "Pending":
            raise ResourceConflictException(function_not_ready("Pending"))
        if cfg.state.value == "Failed":
            raise ResourceNotReadyException(
                f"The function is in a failed state and cannot be invoked: {cfg.state_reason or ''}".strip())
    if invocation_type == "DryRun":
        return {"StatusCode": 204}
    if invocation_type == "Event":
        await s.events.accept(ref, payload, request_id=ctx.request_id, client_context=client_context)
        return {"StatusCode": 202}
    result = await s.invoker.invoke(cfg, payload, client_context=client_context, request_id=ctx.request_id,
                                    invoked_arn=ref.arn, tail_log=p.get("LogType") == "Tail")
    return {
        "StatusCode": 200,
        "FunctionError": result.function_error,
        "LogResult": result.log_result,
        "ExecutedVersion": result.executed_version,
        "Payload": result.payload,
    }


async def invoke_async(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    """The deprecated InvokeAsync: an Event invoke of $LATEST (or the qualifier in the name)."""
    payload: bytes = p.get("InvokeArgs") or b""
    if len(payload) > MAX_ASYNC_REQUEST_BYTES:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {MAX_ASYNC_REQUEST_BYTES} bytes for the InvokeFunction operation")
    ref = _ref(ctx, p)
    try:
        s.functions.route(ref)
    except ResourceNotFoundException:
        raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:{ref.qualifier or '$LATEST'}") \
            from None
    await s.events.accept(ref, _check_payload(payload), request_id=ctx.request_id, client_context=None)
    return {"Status": 202}


def _event_invoke_output(arn: str, setting: EventInvokeSetting) -> dict[str, Any]:
    out: dict[str, Any] = {
        "FunctionArn": arn,
        "LastModified": setting.last_modified,
        "DestinationConfig": {
            "OnSuccess": {"Destination": setting.on_success} if setting.on_success else {},
            "OnFailure": {"Destination": setting.on_failure} if setting.on_failure else {},
        },
    }
    if setting.maximum_retry_attempts is not None:
        out["MaximumRetryAttempts"] = setting.maximum_retry_attempts
    if setting.maximum_event_age is not None:
        out["MaximumEventAgeInSeconds"] = setting.maximum_event_age
    return out


def _event_invoke_changes(p: dict[str, Any]) -> dict[str, Any]:
    return {"retries": p.get("MaximumRetryAttempts"), "max_age": p.get("MaximumEventAgeInSeconds"),
            "destinations": p.get("DestinationConfig")}


async def put_function_event_invoke_config(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return _event_invoke_output(*s.event_config.put(_ref(ctx, p), **_event_invoke_changes(p)))


async def update_function_event_invoke_config(s: Services, ctx: RequestContext,
                                              p: dict[str, Any]) -> dict[str, Any]:
    return _event_invoke_output(*s.event_config.update(_ref(ctx, p), **_event_invoke_changes(p)))


async def get_function_event_invoke_config(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return _event_invoke_output(*s.event_config.get(_ref(ctx, p)))


async def delete_function_event_invoke_config(s: Services, ctx: RequestContext,
                                              p: dict[str, Any]) -> dict[str, Any]:
    s.event_config.delete(_ref(ctx, p))
    return {}


async def list_function_event_invoke_configs(s: Services, ctx: RequestContext,
                                             p: dict[str, Any]) -> dict[str, Any]:
    configs = s.event_config.list(_ref(ctx, p))
    start = 0
    if p.get("Marker"):
        marker = p["Marker"]
        if not marker.isdigit() or int(marker) > len(configs):
            raise InvalidParameterValueException("Invalid marker")
        start = int(marker)
    limit = p.get("MaxItems") or 50
    page = configs[start:start + limit]
    out: dict[str, Any] = {"FunctionEventInvokeConfigs": [_event_invoke_output(a, c) for a, c in page]}
    if start + limit < len(configs):
        out["NextMarker"] = str(start + limit)
    return out


async def put_function_concurrency(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = _ref(ctx, p)
    try:
        cfg = s.functions.put_concurrency(ref, p["ReservedConcurrentExecutions"])
    except ResourceNotFoundException:  # Put names the version it looked for (recorded from AWS)
        raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:$LATEST") from None
    return {"ReservedConcurrentExecutions": cfg.reserved_concurrency}


async def get_function_concurrency(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"ReservedConcurrentExecutions": s.functions.get_concurrency(_ref(ctx, p))}


async def delete_function_concurrency(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.functions.delete_concurrency(_ref(ctx, p))
    return {}


_PUT_ON_LATEST = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
_READ_ON_LATEST = "The function resource provided must be an alias or a published version."


def _provisioned_output(s: Services, version: FunctionConfig, setting: ProvisionedSetting,
                        arn: str | None = None) -> dict[str, Any]:
    available = s.invoker.provisioned_available(version)
    out: dict[str, Any] = {
        "RequestedProvisionedConcurrentExecutions": setting.requested,
        "AvailableProvisionedConcurrentExecutions": available,
        "AllocatedProvisionedConcurrentExecutions": available,
        "Status": "READY" if available >= setting.requested else "IN_PROGRESS",
        "LastModified": setting.last_modified,
    }
    if arn is not None:
        out["FunctionArn"] = arn
    return out


async def put_provisioned_concurrency_config(s: Services, ctx: RequestContext,
                                             p: dict[str, Any]) -> dict[str, Any]:
    qualifier, version = s.functions.provisioned_target(_ref(ctx, p), latest_message=_PUT_ON_LATEST)
    setting = s.functions.put_provisioned(qualifier, version, p["ProvisionedConcurrentExecutions"])
    return _provisioned_output(s, version, setting)


async def get_provisioned_concurrency_config(s: Services, ctx: RequestContext,
                                             p: dict[str, Any]) -> dict[str, Any]:
    qualifier, version = s.functions.provisioned_target(_ref(ctx, p), latest_message=_READ_ON_LATEST)
    return _provisioned_output(s, version, s.functions.get_provisioned(qualifier, version))


async def delete_provisioned_concurrency_config(s: Services, ctx: RequestContext,
                                                p: dict[str, Any]) -> dict[str, Any]:
    qualifier, version = s.functions.provisioned_target(_ref(ctx, p), latest_message=_READ_ON_LATEST)
    s.functions.delete_provisioned(qualifier, version)
    return {}


async def list_provisioned_concurrency_configs(s: Services, ctx: RequestContext,
                                               p: dict[str, Any]) -> dict[str, Any]:
    configs = s.functions.list_provisioned(_ref(ctx, p))
    return {"ProvisionedConcurrencyConfigs": [
        _provisioned_output(s, version, setting, arn=f"{version.arn}:{qualifier}")
        for qualifier, version, setting in configs]}


async def publish_version(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    cfg = s.functions.publish(_ref(ctx, p), code_sha256=p.get("CodeSha256"), revision_id=p.get("RevisionId"),
                              description=p.get("Description"))
    return render.function_configuration(cfg)


async def list_versions_by_function(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    versions = s.functions.versions(_ref(ctx, p))
    start = 0
    if p.get("Marker"):
        start = next((i + 1 for i, c in enumerate(versions) if c.version == p["Marker"]), len(versions))
    max_items = p.get("MaxItems") or 50
    page = versions[start:start + max_items]
    more = start + max_items < len(versions)
    return {"Versions": [render.function_configuration(c, qualified=True) for c in page],
            "NextMarker": page[-1].version if more and page else None}


def _routing(p: dict[str, Any]) -> dict[str, float] | None:
    config = p.get("RoutingConfig")
    return None if config is None else dict(config.get("AdditionalVersionWeights") or {})


async def create_alias(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    latest, alias = s.aliases.create(_ref(ctx, p), p["Name"], p["FunctionVersion"], p.get("Description"),
                                     _routing(p))
    return render.alias_configuration(latest, alias)


async def get_alias(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return render.alias_configuration(*s.aliases.get(_ref(ctx, p), p["Name"]))


async def update_alias(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    latest, alias = s.aliases.update(_ref(ctx, p), p["Name"], version=p.get("FunctionVersion"),
                                     description=p.get("Description"), routing=_routing(p),
                                     revision_id=p.get("RevisionId"))
    return render.alias_configuration(latest, alias)


async def delete_alias(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.aliases.delete(_ref(ctx, p), p["Name"])
    return {}


async def list_aliases(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    ref = _ref(ctx, p)
    latest = s.functions.latest(ref)
    aliases = s.aliases.list(ref, p.get("FunctionVersion"))
    if p.get("Marker"):
        aliases = [a for a in aliases if a.name > p["Marker"]]
    max_items = p.get("MaxItems") or 50
    page = aliases[:max_items]
    return {"Aliases": [render.alias_configuration(latest, a) for a in page],
            "NextMarker": page[-1].name if len(aliases) > max_items and page else None}


def _tag_ref(ctx: RequestContext, p: dict[str, Any]) -> FunctionRef:
    # the model's pattern admits only function ARNs (optionally qualified) for now
    return resolve(p["Resource"], None, region=ctx.region, account_id=ctx.account_id)


async def tag_resource(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.functions.tag(_tag_ref(ctx, p), dict(p["Tags"]))
    return {}


async def untag_resource(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.functions.untag(_tag_ref(ctx, p), list(p["TagKeys"]))
    return {}


async def list_tags(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": s.functions.tags(_tag_ref(ctx, p))}


async def add_permission(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    statement = s.policies.add(
        _ref(ctx, p), sid=p["StatementId"], action=p["Action"], principal=p["Principal"],
        source_arn=p.get("SourceArn"), source_account=p.get("SourceAccount"),
        principal_org_id=p.get("PrincipalOrgID"), event_source_token=p.get("EventSourceToken"),
        function_url_auth_type=p.get("FunctionUrlAuthType"), revision_id=p.get("RevisionId"))
    return {"Statement": statement}


async def remove_permission(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.policies.remove(_ref(ctx, p), p["StatementId"], p.get("RevisionId"))
    return {}


async def get_policy(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    policy, revision_id = s.policies.get(_ref(ctx, p))
    return {"Policy": policy, "RevisionId": revision_id}


def _layer_version_output(s: Services, layer: Any) -> dict[str, Any]:
    return {
        "Content": {"Location": s.code_urls.issue(layer.arn, layer.code.blob_key), "CodeSha256": layer.code.sha256_b64,
                    "CodeSize": layer.code.size},
        "LayerArn": layer.layer_arn, "LayerVersionArn": layer.arn, "Description": layer.description,
        "CreatedDate": layer.created_date, "Version": layer.version,
        "CompatibleRuntimes": list(layer.compatible_runtimes) or None,
        "CompatibleArchitectures": list(layer.compatible_architectures) or None,
        "LicenseInfo": layer.license_info,
    }


def _layer(ctx: RequestContext, p: dict[str, Any]) -> LayerName:
    return layer_name(p["LayerName"], region=ctx.region, account_id=ctx.account_id)


async def publish_layer_version(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    content = p["Content"]
    if "ZipFile" not in content:
        raise InvalidParameterValueException(
            "Lamina does not read layer content from S3 yet; upload the layer with ZipFile.")
    layer = await s.layers.publish(_layer(ctx, p), zip_file=content["ZipFile"], description=p.get("Description"),
                                   compatible_runtimes=p.get("CompatibleRuntimes"),
                                   compatible_architectures=p.get("CompatibleArchitectures"),
                                   license_info=p.get("LicenseInfo"))
    return _layer_version_output(s, layer)


async def get_layer_version(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return _layer_version_output(s, s.layers.get(_layer(ctx, p), int(p["VersionNumber"])))


async def get_layer_version_by_arn(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    base, _, version = p["Arn"].rpartition(":")
    name = layer_name(base, region=ctx.region, account_id=ctx.account_id)
    return _layer_version_output(s, s.layers.get(name, int(version)))


def _list_item(layer: Any) -> dict[str, Any]:
    item = {k: v for k, v in (
        ("LayerVersionArn", layer.arn), ("Version", layer.version), ("Description", layer.description),
        ("CreatedDate", layer.created_date), ("CompatibleRuntimes", list(layer.compatible_runtimes) or None),
        ("CompatibleArchitectures", list(layer.compatible_architectures) or None),
        ("LicenseInfo", layer.license_info)) if v is not None}
    return item


def _compatible(layer: Any, p: dict[str, Any]) -> bool:
    runtime, arch = p.get("CompatibleRuntime"), p.get("CompatibleArchitecture")
    return (runtime is None or runtime in layer.compatible_runtimes) and \
        (arch is None or arch in layer.compatible_architectures)


async def list_layer_versions(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    versions = [v for v in s.layers.versions(_layer(ctx, p)) if _compatible(v, p)]
    if p.get("Marker"):
        versions = [v for v in versions if v.version < int(p["Marker"])]
    max_items = p.get("MaxItems") or 50
    page = versions[:max_items]
    return {"LayerVersions": [_list_item(v) for v in page],
            "NextMarker": str(page[-1].version) if len(versions) > max_items and page else None}


async def list_layers(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    layers = [v for v in s.layers.latest_of_each(ctx.account_id, ctx.region) if _compatible(v, p)]
    if p.get("Marker"):
        layers = [v for v in layers if v.name > p["Marker"]]
    max_items = p.get("MaxItems") or 50
    page = layers[:max_items]
    return {"Layers": [{"LayerName": v.name, "LayerArn": v.layer_arn, "LatestMatchingVersion": _list_item(v)}
                       for v in page],
            "NextMarker": page[-1].name if len(layers) > max_items and page else None}


async def delete_layer_version(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.layers.delete(_layer(ctx, p), int(p["VersionNumber"]))
    return {}


async def add_layer_version_permission(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    statement, revision_id = s.layer_policies.add(
        _layer(ctx, p), int(p["VersionNumber"]), sid=p["StatementId"], action=p["Action"],
        principal=p["Principal"], organization_id=p.get("OrganizationId"), revision_id=p.get("RevisionId"))
    return {"Statement": statement, "RevisionId": revision_id}


async def remove_layer_version_permission(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    s.layer_policies.remove(_layer(ctx, p), int(p["VersionNumber"]), p["StatementId"], p.get("RevisionId"))
    return {}


async def get_layer_version_policy(s: Services, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    policy, revision_id = s.layer_policies.get(_layer(ctx, p), int(p["VersionNumber"]))
    return {"Policy": policy, "RevisionId": revision_id}


HANDLERS: dict[str, Handler] = {
    "CreateFunction": create_function,
    "GetFunction": get_function,
    "GetFunctionConfiguration": get_function_configuration,
    "ListFunctions": list_functions,
    "UpdateFunctionCode": update_function_code,
    "UpdateFunctionConfiguration": update_function_configuration,
    "DeleteFunction": delete_function,
    "GetAccountSettings": get_account_settings,
    "Invoke": invoke,
    "InvokeAsync": invoke_async,
    "PutFunctionEventInvokeConfig": put_function_event_invoke_config,
    "UpdateFunctionEventInvokeConfig": update_function_event_invoke_config,
    "GetFunctionEventInvokeConfig": get_function_event_invoke_config,
    "DeleteFunctionEventInvokeConfig": delete_function_event_invoke_config,
    "ListFunctionEventInvokeConfigs": list_function_event_invoke_configs,
    "PublishVersion": publish_version,
    "PublishLayerVersion": publish_layer_version,
    "GetLayerVersion": get_layer_version,
    "GetLayerVersionByArn": get_layer_version_by_arn,
    "ListLayerVersions": list_layer_versions,
    "ListLayers": list_layers,
    "DeleteLayerVersion": delete_layer_version,
    "AddLayerVersionPermission": add_layer_version_permission,
    "RemoveLayerVersionPermission": remove_layer_version_permission,
    "GetLayerVersionPolicy": get_layer_version_policy,
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
    "GetPolicy": get_policy,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTags": list_tags,
    "CreateAlias": create_alias,
    "GetAlias": get_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
    "ListVersionsByFunction": list_versions_by_function,
    "PutFunctionConcurrency": put_function_concurrency,
    "GetFunctionConcurrency": get_function_concurrency,
    "DeleteFunctionConcurrency": delete_function_concurrency,
    "PutProvisionedConcurrencyConfig": put_provisioned_concurrency_config,
    "GetProvisionedConcurrencyConfig": get_provisioned_concurrency_config,
    "DeleteProvisionedConcurrencyConfig": delete_provisioned_concurrency_config,
    "ListProvisionedConcurrencyConfigs": list_provisioned_concurrency_configs,
}
