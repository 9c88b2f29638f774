"""Functions: CreateFunction, GetFunction(Configuration), ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction.

The request's configuration members become keyword arguments of the function service, None
meaning "unchanged" (Create fills AWS's defaults in below); only `.zip` code sent inline is
accepted, and the refusals of other code sources are AWS's (or say what Lamina lacks).
"""

from __future__ import annotations

from typing import Any

from lamina.api import render
from lamina.api.handlers.code import code_location
from lamina.api.handlers.context import (
    Handler,
    Output,
    Params,
    RequestContext,
    Services,
    configuration,
    function_ref,
)
from lamina.domain.model import LATEST, LayerRef
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException

__all__ = ["HANDLERS"]

_NO_IMAGES = "Container image functions are not supported by Lamina yet; deploy a .zip file archive."
_NO_S3 = "Lamina does not read code from S3 yet; upload the deployment package with ZipFile."
_NO_SOURCE = "Please provide a source for function code."
_NO_IMAGE_UPDATE = "Please don't provide ImageUri when updating a function with packageType Zip."


def _zip_file(code: Params, *, image_refusal: str | None = None) -> bytes:
    """The inline `.zip` of a Code (or UpdateFunctionCode) structure; refuses every other source."""
    if "ZipFile" in code:
        zip_file: bytes = code["ZipFile"]
        return zip_file
    if code.get("S3Bucket") or code.get("S3Key"):
        raise InvalidParameterValueException(_NO_S3)
    if image_refusal is not None and code.get("ImageUri"):
        raise InvalidParameterValueException(image_refusal)
    raise InvalidParameterValueException(_NO_SOURCE)


def _dead_letter(s: Services, p: Params) -> str | None:
    """DeadLetterConfig: absent -> unchanged (None); an empty TargetArn removes it ("")."""
    config = p.get("DeadLetterConfig")
    if config is None:
        return None
    target: str = config.get("TargetArn") or ""
    s.event_config.check_dead_letter(target)
    return target


async def _layers(s: Services, ctx: RequestContext, p: Params) -> tuple[LayerRef, ...] | None:
    arns = p.get("Layers")
    return None if arns is None else await s.layers.resolve_for_function(list(arns), ctx.region)


def _config_changes(p: Params) -> dict[str, Any]:
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


def _logging(config: Params | None) -> dict[str, Any]:
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
    """The alias a request read a version through (its ARN is what AWS answers with)."""
    qualifier = ref.qualifier
    return qualifier if qualifier and qualifier != LATEST and not qualifier.isdigit() else None


async def create_function(s: Services, ctx: RequestContext, p: Params) -> Output:
    code = p.get("Code") or {}
    if p.get("PackageType") == "Image" or code.get("ImageUri"):
        raise InvalidParameterValueException(_NO_IMAGES)
    zip_file = _zip_file(code)
    ref = function_ref(ctx, p)
    if ref.qualifier is not None:
        raise InvalidParameterValueException("Unsupported function name: a qualifier is not allowed here.")
    cfg = await s.functions.create(
        ref, zip_file=zip_file, runtime=p.get("Runtime"), handler=p.get("Handler"), role=p["Role"],
        tags=dict(p.get("Tags") or {}), layers=await _layers(s, ctx, p), dead_letter_arn=_dead_letter(s, p),
        **_config_changes(p),
    )
    return configuration(s, cfg)


async def get_function(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    cfg = s.functions.get(ref)
    latest = s.functions.latest(ref)
    return render.function(cfg, latest, alias=_alias_name(ref),
                           code_location=code_location(s, cfg.qualified_arn, cfg.code.blob_key),
                           runtime_version=s.functions.runtime_version_arn(cfg))


async def get_function_configuration(s: Services, ctx: RequestContext, p: Params) -> Output:
    ref = function_ref(ctx, p)
    return configuration(s, s.functions.get(ref), alias=_alias_name(ref))


async def list_functions(s: Services, ctx: RequestContext, p: Params) -> Output:
    # pages in the function service (by name, in the store); the other lists page here. Listed
    # configurations have no RuntimeVersionConfig (recorded from AWS)
    max_items = p.get("MaxItems") or 50
    page, marker = await s.functions.list_page(ctx.account_id, ctx.region, p.get("Marker"), min(max_items, 10_000))
    return {"Functions": [render.function_configuration(c) for c in page], "NextMarker": marker}


async def update_function_code(s: Services, ctx: RequestContext, p: Params) -> Output:
    zip_file = _zip_file(p, image_refusal=_NO_IMAGE_UPDATE)
    cfg = await s.functions.update_code(function_ref(ctx, p), zip_file, p.get("RevisionId"))
    return configuration(s, cfg)


async def update_function_configuration(s: Services, ctx: RequestContext, p: Params) -> Output:
    changes = _config_changes(p)
    changes.pop("architectures")  # not a member of this operation (UpdateFunctionCode has it)
    cfg = await s.functions.update_configuration(
        function_ref(ctx, p), p.get("RevisionId"), runtime=p.get("Runtime"), handler=p.get("Handler"),
        role=p.get("Role"), layers=await _layers(s, ctx, p), dead_letter_arn=_dead_letter(s, p), **changes)
    return configuration(s, cfg)


async def delete_function(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.functions.delete(function_ref(ctx, p))
    return {"StatusCode": 204}


HANDLERS: dict[str, Handler] = {
    "CreateFunction": create_function,
    "GetFunction": get_function,
    "GetFunctionConfiguration": get_function_configuration,
    "ListFunctions": list_functions,
    "UpdateFunctionCode": update_function_code,
    "UpdateFunctionConfiguration": update_function_configuration,
    "DeleteFunction": delete_function,
}
