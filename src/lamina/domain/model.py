"""Domain values of the control plane: frozen, snake_case, changed with `dataclasses.replace`.

A `FunctionConfig` is one version of a function (`$LATEST` for now). It is never
mutated in place; every change produces a new value with a fresh `revision_id`.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

LATEST = "$LATEST"


class FunctionKey(NamedTuple):
    """A function, all of its versions: what concurrency, stats and logs are kept by."""

    account_id: str
    region: str
    name: str


class VersionKey(NamedTuple):
    """One version of a function ($LATEST or a number): what environments serve."""

    account_id: str
    region: str
    name: str
    version: str

    @property
    def function(self) -> FunctionKey:
        return FunctionKey(self.account_id, self.region, self.name)


class FunctionState(enum.StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    FAILED = "Failed"


class LastUpdateStatus(enum.StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


class UpdateRuntimeOn(enum.StrEnum):
    """When a version's runtime version moves (PutRuntimeManagementConfig)."""

    AUTO = "Auto"                      # to the newest runtime version, whenever there is one
    FUNCTION_UPDATE = "FunctionUpdate"  # to the newest one at each code or configuration update
    MANUAL = "Manual"                  # never: pinned to `runtime_version_arn`


# Allowed function-state transitions; anything not listed is refused.
STATE_TRANSITIONS: dict[FunctionState, frozenset[FunctionState]] = {
    FunctionState.PENDING: frozenset({FunctionState.ACTIVE, FunctionState.FAILED}),
    FunctionState.ACTIVE: frozenset({FunctionState.INACTIVE, FunctionState.FAILED}),
    FunctionState.INACTIVE: frozenset({FunctionState.ACTIVE, FunctionState.FAILED}),
    FunctionState.FAILED: frozenset({FunctionState.ACTIVE}),
}


def aws_timestamp(moment: datetime | None = None) -> str:
    """`LastModified` as AWS writes it: 2024-01-02T03:04:05.678+0000."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def new_revision_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class CodeRef:
    """A function's deployment package in the blob store."""

    blob_key: str          # hex sha256 of the zip bytes (content address)
    sha256_b64: str        # CodeSha256 as AWS reports it (base64 of the digest)
    size: int              # zipped size in bytes (CodeSize)
    unzipped_size: int


@dataclass(frozen=True)
class ProvisionedSetting:
    """Provisioned concurrency asked for one published version (or alias)."""

    requested: int
    last_modified: str


@dataclass(frozen=True)
class EventInvokeSetting:
    """How asynchronous invocations of one qualifier are retried and where their records go
    (PutFunctionEventInvokeConfig). None: AWS's default (2 retries, 6 hours, no destination)."""

    last_modified: float
    maximum_retry_attempts: int | None = None
    maximum_event_age: int | None = None
    on_success: str | None = None   # destination ARN
    on_failure: str | None = None


@dataclass(frozen=True)
class LayerRef:
    """A layer version as a function references it (in order; later layers win in /opt)."""

    arn: str
    code: CodeRef


@dataclass(frozen=True)
class LayerVersion:
    """One immutable version of a layer."""

    account_id: str
    region: str
    name: str
    version: int
    code: CodeRef
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None
    created_date: str = field(default_factory=aws_timestamp)
    policy: Policy | None = None  # who may use this layer version (AddLayerVersionPermission)

    @property
    def layer_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{self.name}"

    @property
    def arn(self) -> str:
        return f"{self.layer_arn}:{self.version}"


@dataclass(frozen=True)
class Alias:
    """A named pointer to a version, with optional weighted routing to one more version."""

    name: str
    function_version: str
    description: str = ""
    routing: dict[str, float] = field(default_factory=dict)
    revision_id: str = field(default_factory=new_revision_id)


@dataclass(frozen=True)
class Policy:
    """A resource-based policy on the function, one version or one alias."""

    revision_id: str
    statements: tuple[tuple[str, str], ...] = ()  # (Sid, the statement as AWS renders it), in order


@dataclass(frozen=True)
class FunctionConfig:
    region: str
    account_id: str
    name: str
    runtime: str | None
    handler: str | None
    role: str
    code: CodeRef
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    ephemeral_storage: int = 512
    environment: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    package_type: str = "Zip"
    tracing_mode: str = "PassThrough"
    layers: tuple[LayerRef, ...] = ()
    kms_key_arn: str | None = None   # accepted and reported; Lamina's own key encrypts at rest
    log_format: str = "Text"                 # LoggingConfig.LogFormat
    application_log_level: str | None = None  # LoggingConfig (JSON format only)
    system_log_level: str | None = None
    log_group: str | None = None             # None: /aws/lambda/<name>
    version: str = LATEST
    state: FunctionState = FunctionState.PENDING
    state_reason: str | None = "The function is being created."
    state_reason_code: str | None = "Creating"
    last_update_status: LastUpdateStatus | None = None
    last_update_status_reason: str | None = None
    last_update_status_reason_code: str | None = None
    last_modified: str = field(default_factory=aws_timestamp)
    revision_id: str = field(default_factory=new_revision_id)
    # on $LATEST: the number of the last version ever published (numbers are never reused)
    version_counter: int = 0
    # function-level (not per version): None = draws on the account's unreserved pool
    reserved_concurrency: int | None = None
    # on $LATEST: the function's tags (functions only, not versions or aliases)
    tags: dict[str, str] = field(default_factory=dict)
    # on $LATEST: resource policies by qualifier ("" for the function itself)
    policies: dict[str, Policy] = field(default_factory=dict)
    # on $LATEST: the function's aliases by name
    aliases: dict[str, Alias] = field(default_factory=dict)
    # on $LATEST: provisioned concurrency per qualifier (published version number or alias)
    provisioned: dict[str, ProvisionedSetting] = field(default_factory=dict)
    # on $LATEST: asynchronous invocation settings per qualifier ($LATEST, version or alias)
    event_invoke: dict[str, EventInvokeSetting] = field(default_factory=dict)
    # DeadLetterConfig.TargetArn: where failed asynchronous events go (per version)
    dead_letter_arn: str | None = None
    # bumped on every code or configuration change: environments started for an older
    # generation are never handed a new invoke
    generation: int = 1
    # runtime management, per version (a published version keeps what $LATEST had): when
    # the runtime version moves, and the runtime version it was created or last updated on
    # (under Manual: the pinned one). None: no managed runtime, or stored before Lamina kept it
    runtime_update_on: UpdateRuntimeOn = UpdateRuntimeOn.AUTO
    runtime_version_arn: str | None = None

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.account_id, self.region, self.name)

    @property
    def version_key(self) -> VersionKey:
        return VersionKey(self.account_id, self.region, self.name, self.version)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @property
    def qualified_arn(self) -> str:
        return f"{self.arn}:{self.version}"

    @property
    def published(self) -> bool:
        return self.version != LATEST

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"

    @property
    def ready(self) -> bool:
        """Invokable: Active and not in the middle of an update."""
        return self.state is FunctionState.ACTIVE and self.last_update_status is not LastUpdateStatus.IN_PROGRESS
