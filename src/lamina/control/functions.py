"""Function lifecycle: create, read, list, update code/configuration, delete.

Pure domain rules plus calls to the store; no HTTP here. Every write goes through this
service, which keeps an in-memory view of all functions (the invoke path reads it
without touching SQLite). State machine: Pending → Active (or Failed) after create;
LastUpdateStatus InProgress → Successful (or Failed) after an update; a second change
while one is in progress is refused with 409 as AWS refuses it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lamina.control.layers import check_total_size
from lamina.domain.messages import function_not_ready, revision_mismatch, update_in_progress
from lamina.domain.model import (
    LATEST,
    STATE_TRANSITIONS,
    CodeRef,
    FunctionConfig,
    FunctionState,
    LastUpdateStatus,
    ProvisionedSetting,
    aws_timestamp,
    new_revision_id,
)
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lamina.packages import inspect_zip
from lamina.runtimes.catalog import DEPRECATED, RuntimeCatalog, deprecation_message
from lamina.store.protocols import BlobStore, MetadataStore

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
Key = tuple[str, str, str]


def _key(account: str, region: str, name: str) -> Key:
    return (account, region, name)


def _publishable(cfg: FunctionConfig) -> tuple[object, ...]:
    """What makes two configurations the same version: code and run-time settings."""
    return (cfg.code.blob_key, cfg.runtime, cfg.handler, cfg.role, cfg.timeout, cfg.memory_size,
            cfg.ephemeral_storage, tuple(sorted(cfg.environment.items())), cfg.architectures, cfg.tracing_mode,
            cfg.layers, cfg.dead_letter_arn)


class FunctionService:
    def __init__(self, store: MetadataStore, blobs: BlobStore, catalog: RuntimeCatalog,
                 on_change: Callable[[FunctionConfig], None],
                 on_delete: Callable[[str, str, str], None], *,
                 on_delete_version: Callable[[FunctionConfig], None] = lambda _cfg: None,
                 on_provisioned: Callable[[FunctionConfig, int], None] = lambda _cfg, _n: None,
                 concurrency_limit: int = 1000,
                 min_unreserved: int = 100) -> None:
        self.concurrency_limit = concurrency_limit
        self.min_unreserved = min_unreserved
        self._store = store
        self._blobs = blobs
        self._catalog = catalog
        self._on_change = on_change
        self._on_delete = on_delete
        self._on_delete_version = on_delete_version
        self._on_provisioned = on_provisioned
        self._functions: dict[Key, FunctionConfig] = {}          # $LATEST of each function
        self._versions: dict[Key, dict[str, FunctionConfig]] = {}  # published versions
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """Read every function; finish transitions a previous run left half-way."""
        for cfg in self._store.all_functions():
            if cfg.published:
                self._versions.setdefault(_key(cfg.account_id, cfg.region, cfg.name), {})[cfg.version] = cfg
                continue
            self._functions[_key(cfg.account_id, cfg.region, cfg.name)] = cfg
            if cfg.state is FunctionState.PENDING or cfg.last_update_status is LastUpdateStatus.IN_PROGRESS:
                self._schedule_settle(cfg)

    # -- reads --------------------------------------------------------------------------------
    def get(self, ref: FunctionRef) -> FunctionConfig:
        """$LATEST, or the published version the qualifier names."""
        key = _key(ref.account_id, ref.region, ref.name)
        cfg = self._functions.get(key)
        if cfg is not None and ref.qualifier not in (None, LATEST):
            qualifier = ref.qualifier or ""
            alias = cfg.aliases.get(qualifier)
            if alias is not None:
                qualifier = alias.function_version
            cfg = cfg if qualifier == LATEST else self._versions.get(key, {}).get(qualifier)
        if cfg is None:
            raise ResourceNotFoundException(f"Function not found: {ref.arn}")
        return cfg

    def route(self, ref: FunctionRef) -> FunctionConfig:
        """The version an invoke runs: an alias with routing picks its extra version with
        the configured weight."""
        if ref.qualifier and not ref.qualifier.isdigit() and ref.qualifier != LATEST:
            latest = self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))
            alias = latest.aliases.get(ref.qualifier)
            if alias is not None:
                for version, weight in alias.routing.items():
                    if random.random() < weight:
                        return self.get(FunctionRef(ref.account_id, ref.region, ref.name, version))
        return self.get(ref)

    # -- tags ----------------------------------------------------------------------------------
    def tag(self, ref: FunctionRef, tags: dict[str, str]) -> None:
        latest = self._tag_target(ref)
        merged = {**latest.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
        self.save_latest(latest, replace(latest, tags=merged))

    def untag(self, ref: FunctionRef, keys: list[str]) -> None:
        latest = self._tag_target(ref)
        self.save_latest(latest, replace(latest, tags={k: v for k, v in latest.tags.items() if k not in keys}))

    def tags(self, ref: FunctionRef) -> dict[str, str]:
        return dict(self._tag_target(ref).tags)

    def _tag_target(self, ref: FunctionRef) -> FunctionConfig:
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a function ARN.")
        return self.latest(ref)

    def latest(self, ref: FunctionRef) -> FunctionConfig:
        return self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))

    def save_latest(self, latest: FunctionConfig, updated: FunctionConfig) -> None:
        """Persist a change to $LATEST's function-level settings (aliases, concurrency)."""
        self._store.put_function(updated, expected_revision=latest.revision_id)
        self._functions[_key(latest.account_id, latest.region, latest.name)] = updated

    def published(self) -> list[FunctionConfig]:
        return [v for versions in self._versions.values() for v in versions.values()]

    def versions(self, ref: FunctionRef) -> list[FunctionConfig]:
        """$LATEST, then the published versions in order."""
        latest = self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))
        published = self._versions.get(_key(ref.account_id, ref.region, ref.name), {})
        return [latest, *sorted(published.values(), key=lambda c: int(c.version))]

    def list_page(self, account: str, region: str, marker: str | None,
             max_items: int) -> tuple[list[FunctionConfig], str | None]:
        names = sorted(n for (a, r, n) in self._functions if a == account and r == region)
        start = 0
        if marker:
            start = next((i for i, n in enumerate(names) if n > marker), len(names))
        page = names[start:start + max_items]
        next_marker = page[-1] if start + max_items < len(names) and page else None
        return [self._functions[_key(account, region, n)] for n in page], next_marker

    def all(self) -> list[FunctionConfig]:
        return list(self._functions.values())

    # -- writes ---------------------------------------------------------------------------------
    async def create(self, ref: FunctionRef, *, zip_file: bytes, runtime: str | None, handler: str | None,
                     role: str, **config: Any) -> FunctionConfig:
        key = _key(ref.account_id, ref.region, ref.name)
        if key in self._functions:
            raise ResourceConflictException(f"Function already exist: {ref.name}")
        self._check_runtime(runtime)
        if len(config.get("tags") or {}) > MAX_TAGS:
            raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
        self._check_memory(config.get("memory_size"))
        self._check_environment(config.get("environment") or {})
        code = await self._store_code(zip_file)
        check_total_size(code, config.get("layers") or ())
        cfg = FunctionConfig(region=ref.region, account_id=ref.account_id, name=ref.name,
                             runtime=runtime, handler=handler, role=role, code=code,
                             **{k: v for k, v in config.items() if v is not None})
        if key in self._functions:
            raise ResourceConflictException(f"Function already exist: {ref.name}")
        self._store.create_function(cfg)
        self._functions[key] = cfg
        self._schedule_settle(cfg)
        return cfg

    async def update_code(self, ref: FunctionRef, zip_file: bytes, revision_id: str | None) -> FunctionConfig:
        current = self._updatable(ref, revision_id)
        code = await self._store_code(zip_file)
        current = self._updatable(ref, revision_id)
        check_total_size(code, current.layers)
        return self._begin_update(current, replace(current, code=code))

    async def update_configuration(self, ref: FunctionRef, revision_id: str | None,
                                   **changes: Any) -> FunctionConfig:
        current = self._updatable(ref, revision_id)
        if "runtime" in changes and changes["runtime"] is not None:
            self._check_runtime(changes["runtime"])
        self._check_memory(changes.get("memory_size"))
        if changes.get("environment") is not None:
            self._check_environment(changes["environment"])
        updates = {k: v for k, v in changes.items() if v is not None}
        if "layers" in updates:
            check_total_size(current.code, updates["layers"])
        return self._begin_update(current, replace(current, **updates))

    async def delete(self, ref: FunctionRef) -> None:
        """The whole function, or one published version when the qualifier names it."""
        latest = self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))
        key = _key(ref.account_id, ref.region, ref.name)
        if ref.qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function.")
        if ref.qualifier is not None:
            version = self.get(ref)
            self._store.delete_version(ref.region, ref.name, version.version, account_id=ref.account_id)
            if version.version in latest.provisioned:
                self._set_provisioned(latest, {q: p for q, p in latest.provisioned.items() if q != version.version})
                latest = self.latest(ref)
            if version.version in latest.event_invoke:
                self.save_latest(latest, replace(latest, event_invoke={
                    q: s for q, s in latest.event_invoke.items() if q != version.version}))
                latest = self.latest(ref)
            del self._versions[key][version.version]
            self._on_delete_version(version)
            return
        self._store.delete_function(latest.region, latest.name, account_id=latest.account_id)
        self._functions.pop(key, None)
        self._versions.pop(key, None)
        self._on_delete(ref.account_id, ref.region, ref.name)

    def publish(self, ref: FunctionRef, *, code_sha256: str | None, revision_id: str | None,
                description: str | None) -> FunctionConfig:
        """Snapshot $LATEST as the next version; unchanged since the newest version: that one."""
        latest = self._updatable(FunctionRef(ref.account_id, ref.region, ref.name, None), None)
        if code_sha256 is not None and code_sha256 != latest.code.sha256_b64:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.code.sha256_b64}). Please try again with the CodeSHA256 in $LATEST.")
        if revision_id is not None and revision_id != latest.revision_id:
            raise PreconditionFailedException(
                revision_mismatch())
        key = _key(latest.account_id, latest.region, latest.name)
        published = self._versions.setdefault(key, {})
        if published:
            newest = max(published.values(), key=lambda c: int(c.version))
            if _publishable(newest) == _publishable(latest):
                return newest
        number = latest.version_counter + 1
        version = replace(latest, version=str(number), description=description or latest.description,
                          state=FunctionState.ACTIVE, state_reason=None, state_reason_code=None,
                          last_update_status=LastUpdateStatus.SUCCESSFUL, last_update_status_reason=None,
                          last_update_status_reason_code=None, last_modified=aws_timestamp(),
                          revision_id=new_revision_id(), reserved_concurrency=None)
        self._store.put_function(version)
        bumped = replace(latest, version_counter=number, revision_id=new_revision_id())
        self._store.put_function(bumped, expected_revision=latest.revision_id)
        self._functions[key] = bumped
        published[version.version] = version
        return version

    def unreserved_concurrency(self, account: str) -> int:
        return self.concurrency_limit - sum(
            c.reserved_concurrency or 0 for (a, _r, _n), c in self._functions.items() if a == account)

    def put_concurrency(self, ref: FunctionRef, reserved: int) -> FunctionConfig:
        cfg = self._function_only(ref)
        others = sum(c.reserved_concurrency or 0 for k, c in self._functions.items()
                     if k[0] == ref.account_id and k != _key(cfg.account_id, cfg.region, cfg.name))
        if self.concurrency_limit - others - reserved < self.min_unreserved:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{self.min_unreserved}].")
        return self._set_concurrency(cfg, reserved)

    def delete_concurrency(self, ref: FunctionRef) -> None:
        self._set_concurrency(self._function_only(ref), None)

    def get_concurrency(self, ref: FunctionRef) -> int | None:
        return self._function_only(ref).reserved_concurrency

    # -- provisioned concurrency (on published versions) ----------------------------------------
    def provisioned_target(self, ref: FunctionRef, *, latest_message: str) -> tuple[str, FunctionConfig]:
        """The qualifier (published version or alias) a provisioned-concurrency call names and
        the version it stands for, or AWS's error."""
        qualifier = ref.qualifier or ""
        try:
            latest = self.latest(ref)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:{qualifier}") from None
        if qualifier == LATEST:
            raise InvalidParameterValueException(latest_message)
        if not qualifier.isdigit() and qualifier not in latest.aliases:
            raise ResourceNotFoundException(f"Cannot find alias arn: {ref.unqualified_arn}:{qualifier}")
        version = self.get(ref)
        if version.version == LATEST:
            raise InvalidParameterValueException(latest_message)
        return qualifier, version

    def put_provisioned(self, qualifier: str, version: FunctionConfig, requested: int) -> ProvisionedSetting:
        latest = self._functions[_key(version.account_id, version.region, version.name)]
        for other in latest.provisioned:
            if other != qualifier and self._qualified_version(latest, other) == version.version:
                if qualifier.isdigit():
                    raise ResourceConflictException("Version is pointed by a Provisioned Concurrency alias")
                raise ResourceConflictException(
                    "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version")
        others = sum(p.requested for q, p in latest.provisioned.items() if q != qualifier)
        if latest.reserved_concurrency is not None:
            if others + requested > latest.reserved_concurrency:
                raise InvalidParameterValueException(
                    "Requested Provisioned Concurrency should not be greater than the "
                    "reservedConcurrentExecution for function")
        else:
            unreserved = self.unreserved_concurrency(version.account_id)
            if requested > unreserved:
                raise InvalidParameterValueException(
                    "Specified ConcurrentExecutions for function is greater than account's unreserved "
                    f"concurrency [{unreserved}].")
            if unreserved - self._provisioned_total(version.account_id, skip=version) - requested \
                    < self.min_unreserved:
                raise InvalidParameterValueException(
                    "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
                    f"below its minimum value of [{self.min_unreserved}].")
        setting = ProvisionedSetting(requested, aws_timestamp())
        self._set_provisioned(latest, {**latest.provisioned, qualifier: setting})
        return setting

    def get_provisioned(self, qualifier: str, version: FunctionConfig) -> ProvisionedSetting:
        latest = self._functions[_key(version.account_id, version.region, version.name)]
        setting = latest.provisioned.get(qualifier)
        if setting is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                "No Provisioned Concurrency Config found for this function")
        return setting

    def delete_provisioned(self, qualifier: str, version: FunctionConfig) -> None:
        self.get_provisioned(qualifier, version)
        latest = self._functions[_key(version.account_id, version.region, version.name)]
        self._set_provisioned(latest, {q: p for q, p in latest.provisioned.items() if q != qualifier})

    def list_provisioned(self, ref: FunctionRef) -> list[tuple[str, FunctionConfig, ProvisionedSetting]]:
        latest = self.latest(ref)
        out = []
        for qualifier, setting in sorted(latest.provisioned.items()):
            version = self._versions.get(_key(ref.account_id, ref.region, ref.name), {}).get(
                self._qualified_version(latest, qualifier))
            if version is not None:
                out.append((qualifier, version, setting))
        return out

    @staticmethod
    def _qualified_version(latest: FunctionConfig, qualifier: str) -> str:
        alias = latest.aliases.get(qualifier)
        return alias.function_version if alias is not None else qualifier

    def refresh_provisioned(self, latest: FunctionConfig, before: FunctionConfig) -> None:
        """Tell the invoker which versions now want how many provisioned environments
        (after settings changed or aliases moved); unchanged versions are left alone."""
        def wanted(cfg: FunctionConfig) -> dict[str, int]:
            out: dict[str, int] = {}
            for qualifier, setting in cfg.provisioned.items():
                version = self._qualified_version(cfg, qualifier)
                out[version] = out.get(version, 0) + setting.requested
            return out

        old, new = wanted(before), wanted(latest)
        versions = self._versions.get(_key(latest.account_id, latest.region, latest.name), {})
        for number in set(old) | set(new):
            if old.get(number) != new.get(number) and number in versions:
                self._on_provisioned(versions[number], new.get(number, 0))

    def _provisioned_total(self, account: str, skip: FunctionConfig) -> int:
        """Provisioned concurrency drawn from the unreserved pool, but for `skip`'s version."""
        total = 0
        for (a, _region, name), latest in self._functions.items():
            if a != account or latest.reserved_concurrency is not None:
                continue
            total += sum(p.requested for q, p in latest.provisioned.items() if (name, q) != (skip.name, skip.version))
        return total

    def _set_provisioned(self, latest: FunctionConfig, provisioned: dict[str, ProvisionedSetting]) -> None:
        updated = replace(latest, provisioned=provisioned)
        self._store.put_function(updated, expected_revision=latest.revision_id)
        self._functions[_key(latest.account_id, latest.region, latest.name)] = updated
        self.refresh_provisioned(updated, latest)

    def _function_only(self, ref: FunctionRef) -> FunctionConfig:
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
                "operation. Please specify either a function name or an unqualified function ARN.")
        return self.get(ref)

    def _set_concurrency(self, cfg: FunctionConfig, reserved: int | None) -> FunctionConfig:
        updated = replace(cfg, reserved_concurrency=reserved)
        self._store.put_function(updated, expected_revision=cfg.revision_id)
        self._functions[_key(cfg.account_id, cfg.region, cfg.name)] = updated
        self._on_change(updated)
        return updated

    # -- rules --------------------------------------------------------------------------------------
    def _check_runtime(self, runtime: str | None) -> None:
        if runtime is None:
            raise InvalidParameterValueException("Runtime and Handler are mandatory parameters for functions "
                                                 "created with deployment packages.")
        if runtime in DEPRECATED:
            raise InvalidParameterValueException(deprecation_message(runtime))
        if self._catalog.get(runtime) is None:
            raise InvalidParameterValueException(
                f"The runtime parameter of {runtime} is not available on this Lamina host. "
                f"Runtimes available here: {', '.join(self._catalog.names)}.")

    @staticmethod
    def _check_memory(memory_size: int | None) -> None:
        # botocore's model allows up to 32768; Lambda itself stops at 10240 MB
        if memory_size is not None and memory_size > MAX_MEMORY_MB:
            raise ValidationException(
                f"'MemorySize' value failed to satisfy constraint: Member must have value less than or equal "
                f"to {MAX_MEMORY_MB}")

    @staticmethod
    def _check_environment(variables: dict[str, str]) -> None:
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

    async def _store_code(self, zip_file: bytes) -> CodeRef:
        def work() -> CodeRef:
            prepared = inspect_zip(zip_file)
            self._blobs.put(zip_file)
            return CodeRef(prepared.blob_key, prepared.sha256_b64, prepared.size, prepared.unzipped_size)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    def _updatable(self, ref: FunctionRef, revision_id: str | None) -> FunctionConfig:
        cfg = self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))
        if ref.qualifier not in (None, cfg.version):
            raise ResourceNotFoundException(f"Function not found: {ref.arn}")
        if revision_id is not None and revision_id != cfg.revision_id:
            raise PreconditionFailedException(
                revision_mismatch())
        if cfg.state is FunctionState.PENDING:
            raise ResourceConflictException(function_not_ready(cfg.state.value))
        if cfg.last_update_status is LastUpdateStatus.IN_PROGRESS:
            raise ResourceConflictException(update_in_progress(cfg.arn))
        return cfg

    def _begin_update(self, current: FunctionConfig, changed: FunctionConfig) -> FunctionConfig:
        cfg = replace(changed, last_update_status=LastUpdateStatus.IN_PROGRESS,
                      last_update_status_reason="The function is being created.",
                      last_update_status_reason_code="Creating",
                      last_modified=aws_timestamp(), revision_id=new_revision_id(),
                      generation=current.generation + 1)
        self._store.put_function(cfg, expected_revision=current.revision_id)
        self._functions[_key(cfg.account_id, cfg.region, cfg.name)] = cfg
        self._on_change(cfg)
        self._schedule_settle(cfg)
        return cfg

    # -- settling: Pending → Active, InProgress → Successful --------------------------------------
    def _schedule_settle(self, cfg: FunctionConfig) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(cfg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, cfg: FunctionConfig) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._blobs.extracted, cfg.code.blob_key)
            if cfg.layers:  # merged now, as AWS readies a function's layers before it is Active
                await loop.run_in_executor(None, self._blobs.merged, [layer.code.blob_key for layer in cfg.layers])
            error: str | None = None
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        key = _key(cfg.account_id, cfg.region, cfg.name)
        current = self._functions.get(key)
        if current is None or current.revision_id != cfg.revision_id:
            return  # deleted or changed again meanwhile; the newer change settles itself
        if current.state is FunctionState.PENDING:
            target = FunctionState.FAILED if error else FunctionState.ACTIVE
            assert target in STATE_TRANSITIONS[current.state]
            settled = replace(current, state=target,
                              state_reason=f"Lamina could not prepare the code: {error}" if error else None,
                              state_reason_code="InvalidZipFileException" if error else None,
                              last_update_status=LastUpdateStatus.FAILED if error else LastUpdateStatus.SUCCESSFUL,
                              last_update_status_reason=None, last_update_status_reason_code=None,
                              revision_id=new_revision_id())
        else:
            settled = replace(current,
                              last_update_status=LastUpdateStatus.FAILED if error else LastUpdateStatus.SUCCESSFUL,
                              last_update_status_reason=(
                                  f"Lamina could not prepare the code: {error}" if error else None),
                              last_update_status_reason_code="InvalidZipFileException" if error else None,
                              revision_id=new_revision_id())
        self._store.put_function(settled, expected_revision=current.revision_id)
        self._functions[key] = settled
        self._on_change(settled)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
