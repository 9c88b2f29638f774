"""Domain values → AWS's CamelCase output members (the only place that knows both)."""

from __future__ import annotations

from typing import Any

from lamina.domain.model import Alias, FunctionConfig


def function_configuration(cfg: FunctionConfig, *, qualified: bool = False, alias: str | None = None) -> dict[str, Any]:
    """A version's configuration; published versions (and any listed version) carry their
    qualified ARN, and a version read through an alias the alias's ARN, as AWS renders them."""
    arn = cfg.qualified_arn if qualified or cfg.published else cfg.arn
    out: dict[str, Any] = {
        "FunctionName": cfg.name,
        "FunctionArn": f"{cfg.arn}:{alias}" if alias else arn,
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


def alias_configuration(latest: FunctionConfig, alias: Alias) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": f"{latest.arn}:{alias.name}",
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.routing:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
    return out
