"""Domain values → AWS's CamelCase output members (the only place that knows both).

Each function here builds one output shape of botocore's model from snake_case values; the
handlers compute nothing of their own output. Members whose value is None are left for
`LambdaModel.serialize` to omit, as AWS omits them.
"""

from __future__ import annotations

from typing import Any, Protocol

from lamina.domain.arns import lambda_arn
from lamina.domain.model import (
    Alias,
    EventInvokeSetting,
    FunctionConfig,
    LayerVersion,
    ProvisionedSetting,
    UpdateRuntimeOn,
)


class InvokeResult(Protocol):
    """What `invocation` reads of the invoker's result (`lamina.invoke`'s InvokeResult)."""

    @property
    def payload(self) -> bytes: ...
    @property
    def function_error(self) -> str | None: ...
    @property
    def log_result(self) -> str | None: ...
    @property
    def executed_version(self) -> str: ...


# GetAccountSettings' AccountLimit members that Lamina does not configure: AWS's defaults
TOTAL_CODE_SIZE = 80_530_636_800
CODE_SIZE_UNZIPPED = 262_144_000
CODE_SIZE_ZIPPED = 52_428_800


def function_arn(cfg: FunctionConfig, qualifier: str | None = None) -> str:
    return lambda_arn(cfg.region, cfg.account_id, "function", cfg.name, qualifier)


def function_configuration(cfg: FunctionConfig, *, qualified: bool = False, alias: str | None = None,
                           runtime_version: str | None = None) -> dict[str, Any]:
    """A version's configuration; published versions (and any listed version) carry their
    qualified ARN, and a version read through an alias the alias's ARN, as AWS renders them.
    `runtime_version`: the RuntimeVersionArn it runs on (None: no RuntimeVersionConfig, as in
    AWS's lists and for container images)."""
    arn = cfg.qualified_arn if qualified or cfg.published else cfg.arn
    out: dict[str, Any] = {
        "FunctionName": cfg.name,
        "FunctionArn": function_arn(cfg, alias) if alias else arn,
        "Runtime": cfg.runtime,
        "Role": cfg.role,
        "Handler": cfg.handler,
        "CodeSize": cfg.code.size,
        "Description": cfg.description,
        "Timeout": cfg.timeout,
        "MemorySize": cfg.memory_size,
        "LastModified": cfg.last_modified,
        "CodeSha256": cfg.code.sha256_b64,
        "Version": cfg.version,
        "TracingConfig": {"Mode": cfg.tracing_mode},
        "RevisionId": cfg.revision_id,
        "State": cfg.state.value,
        "StateReason": cfg.state_reason,
        "StateReasonCode": cfg.state_reason_code,
        "PackageType": cfg.package_type,
        "Architectures": list(cfg.architectures),
        "EphemeralStorage": {"Size": cfg.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {k: v for k, v in (
            ("LogFormat", cfg.log_format),
            ("ApplicationLogLevel", cfg.application_log_level if cfg.log_format == "JSON" else None),
            ("SystemLogLevel", cfg.system_log_level if cfg.log_format == "JSON" else None),
            ("LogGroup", cfg.log_group_name)) if v},
    }
    if runtime_version is not None:
        out["RuntimeVersionConfig"] = {"RuntimeVersionArn": runtime_version}
    if cfg.environment:
        out["Environment"] = {"Variables": dict(cfg.environment)}
    if cfg.layers:
        out["Layers"] = [{"Arn": layer.arn, "CodeSize": layer.code.size} for layer in cfg.layers]
    if cfg.dead_letter_arn:
        out["DeadLetterConfig"] = {"TargetArn": cfg.dead_letter_arn}
    if cfg.kms_key_arn:
        out["KMSKeyArn"] = cfg.kms_key_arn
    if cfg.last_update_status is not None:
        out["LastUpdateStatus"] = cfg.last_update_status.value
        out["LastUpdateStatusReason"] = cfg.last_update_status_reason
        out["LastUpdateStatusReasonCode"] = cfg.last_update_status_reason_code
    return {k: v for k, v in out.items() if v is not None}


def function(cfg: FunctionConfig, latest: FunctionConfig, *, alias: str | None, code_location: str,
             runtime_version: str | None = None) -> dict[str, Any]:
    """GetFunction: the version's configuration, its code, and what only $LATEST holds."""
    out: dict[str, Any] = {
        "Configuration": function_configuration(cfg, alias=alias, runtime_version=runtime_version),
        "Code": {"RepositoryType": "S3", "Location": code_location},
    }
    if latest.reserved_concurrency is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": latest.reserved_concurrency}
    if latest.tags:
        out["Tags"] = dict(latest.tags)
    return out


def alias_configuration(latest: FunctionConfig, alias: Alias) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": function_arn(latest, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.routing:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
    return out


def account_settings(*, concurrency_limit: int, unreserved: int, functions: list[FunctionConfig]) -> dict[str, Any]:
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
            "CodeSizeZipped": CODE_SIZE_ZIPPED,
            "ConcurrentExecutions": concurrency_limit,
            "UnreservedConcurrentExecutions": unreserved,
        },
        "AccountUsage": {"TotalCodeSize": sum(c.code.size for c in functions), "FunctionCount": len(functions)},
    }


def invocation(result: InvokeResult) -> dict[str, Any]:
    """A synchronous invocation's answer: a function error is a value in it, not an API error."""
    return {
        "StatusCode": 200,
        "FunctionError": result.function_error,
        "LogResult": result.log_result,
        "ExecutedVersion": result.executed_version,
        "Payload": result.payload,
    }


def policy(document: str, revision_id: str) -> dict[str, Any]:
    """GetPolicy and GetLayerVersionPolicy."""
    return {"Policy": document, "RevisionId": revision_id}


def layer_version(layer: LayerVersion, *, location: str) -> dict[str, Any]:
    """PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn."""
    return {
        "Content": {"Location": location, "CodeSha256": layer.code.sha256_b64, "CodeSize": layer.code.size},
        "LayerArn": layer.layer_arn, "LayerVersionArn": layer.arn, "Description": layer.description,
        "CreatedDate": layer.created_date, "Version": layer.version,
        "CompatibleRuntimes": list(layer.compatible_runtimes) or None,
        "CompatibleArchitectures": list(layer.compatible_architectures) or None,
        "LicenseInfo": layer.license_info,
    }


def layer_version_item(layer: LayerVersion) -> dict[str, Any]:
    """One entry of ListLayerVersions (and ListLayers' LatestMatchingVersion)."""
    return {k: v for k, v in (
        ("LayerVersionArn", layer.arn), ("Version", layer.version), ("Description", layer.description),
        ("CreatedDate", layer.created_date), ("CompatibleRuntimes", list(layer.compatible_runtimes) or None),
        ("CompatibleArchitectures", list(layer.compatible_architectures) or None),
        ("LicenseInfo", layer.license_info)) if v is not None}


def layer_item(latest: LayerVersion) -> dict[str, Any]:
    """One entry of ListLayers: a layer and its latest (matching) version."""
    return {"LayerName": latest.name, "LayerArn": latest.layer_arn, "LatestMatchingVersion": layer_version_item(latest)}


def event_invoke_config(arn: str, setting: EventInvokeSetting) -> dict[str, Any]:
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


def provisioned_config(setting: ProvisionedSetting, available: int, *, arn: str | None = None) -> dict[str, Any]:
    """A provisioned concurrency config; `arn` (the qualified function) only in ListProvisionedConcurrencyConfigs."""
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


def runtime_management_config(cfg: FunctionConfig, function_arn: str) -> dict[str, Any]:
    """Get/PutRuntimeManagementConfig: the version's mode, the runtime version it is pinned to
    (Manual only; AWS answers null otherwise) and the function's ARN."""
    manual = cfg.runtime_update_on is UpdateRuntimeOn.MANUAL
    return {"UpdateRuntimeOn": cfg.runtime_update_on.value,
            "RuntimeVersionArn": cfg.runtime_version_arn if manual else None,
            "FunctionArn": function_arn}
