"""What AWS refuses in a function's configuration, with AWS's messages.

Pure checks: each raises the ApiError AWS raises, or returns. The service that applies a
change calls them before anything is stored.
"""

from __future__ import annotations

import json
from datetime import date

from lamina.errors import InvalidParameterValueException, ValidationException
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.runtimes.lifecycle import create_blocked, no_longer_supported, update_blocked

RESERVED_ENV_KEYS = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
ENV_LIMIT_BYTES = 4096
MAX_MEMORY_MB = 10240
MAX_TAGS = 50


def check_runtime(catalog: RuntimeCatalog, runtime: str | None, *, on: date, updating: bool = False) -> None:
    """A runtime CreateFunction (or, `updating`, UpdateFunctionConfiguration) may set on `on`:
    one AWS has not blocked yet (`lamina.runtimes.lifecycle`), and that this host serves."""
    if runtime is None:
        raise InvalidParameterValueException("Runtime and Handler are mandatory parameters for functions "
                                             "created with deployment packages.")
    blocked = update_blocked if updating else create_blocked
    if blocked(runtime, on):
        raise InvalidParameterValueException(no_longer_supported(runtime))
    if catalog.plan(runtime) is None:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is not available on this Lamina host. "
            f"Runtimes available here: {', '.join(catalog.names)}.")


def check_code_updatable(runtime: str | None, *, on: date) -> None:
    """UpdateFunctionCode: refused once the function's runtime is past its block-update date
    (AWS refuses code updates then; a configuration update that leaves the runtime alone is
    still allowed)."""
    if runtime is not None and update_blocked(runtime, on):
        raise InvalidParameterValueException(no_longer_supported(runtime))


def check_memory(memory_size: int | None) -> None:
    # botocore's model allows up to 32768; Lambda itself stops at 10240 MB
    if memory_size is not None and memory_size > MAX_MEMORY_MB:
        raise ValidationException(
            f"'MemorySize' value failed to satisfy constraint: Member must have value less than or equal "
            f"to {MAX_MEMORY_MB}")


def check_environment(variables: dict[str, str]) -> None:
    reserved = [k for k in variables if k in RESERVED_ENV_KEYS]
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}")
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > ENV_LIMIT_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {measured}")


def check_tag_count(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
