"""Functions: create, read, list, update code and configuration, delete.

Domain rules plus calls to the repository (the store decides, memory caches; see
`repository`); no HTTP here. Reads that an invoke needs (`get`, `route`) come from memory;
lists come from the store. A change to code or configuration makes LastUpdateStatus
InProgress until `settling` has prepared it; a second change meanwhile is refused with
409, and so is a change to a function still Pending, as AWS refuses them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from lamina.control.code import CodeStore
from lamina.control.layers import check_total_size
from lamina.control.repository import FunctionRepository
from lamina.control.rules import check_environment, check_memory, check_runtime, check_tag_count
from lamina.control.settling import Settler, begin_update
from lamina.domain.messages import function_not_ready, revision_mismatch, update_in_progress
from lamina.domain.model import (
    LATEST,
    FunctionConfig,
    FunctionKey,
    FunctionState,
    LastUpdateStatus,
    aws_timestamp,
    new_revision_id,
)
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lamina.runtimes.catalog import RuntimeCatalog


def key_of(ref: FunctionRef) -> FunctionKey:
    return FunctionKey(ref.account_id, ref.region, ref.name)


class FunctionService:
    def __init__(self, repo: FunctionRepository, code: CodeStore, catalog: RuntimeCatalog,
                 settler: Settler) -> None:
        self.repo = repo
        self._code = code
        self._catalog = catalog
        self._settler = settler

    # -- reads ----------------------------------------------------------------------------
    def get(self, ref: FunctionRef) -> FunctionConfig:
        """$LATEST, or the published version the qualifier names (directly or by alias)."""
        key = key_of(ref)
        cfg = self.repo.latest(key)
        if cfg is not None and ref.qualifier not in (None, LATEST):
            qualifier = ref.qualifier or ""
            alias = cfg.aliases.get(qualifier)
            if alias is not None:
                qualifier = alias.function_version
            cfg = self.repo.version(key, qualifier)
        if cfg is None:
            raise ResourceNotFoundException(f"Function not found: {ref.arn}")
        return cfg

    def latest(self, ref: FunctionRef) -> FunctionConfig:
        return self.get(FunctionRef(ref.account_id, ref.region, ref.name, None))

    def route(self, ref: FunctionRef) -> FunctionConfig:
        """The version an invoke runs: an alias with routing picks its extra version with
        the configured weight."""
        if ref.qualifier and not ref.qualifier.isdigit() and ref.qualifier != LATEST:
            alias = self.latest(ref).aliases.get(ref.qualifier)
            if alias is not None:
                for version, weight in alias.routing.items():
                    if random.random() < weight:
                        return self.get(FunctionRef(ref.account_id, ref.region, ref.name, version))
        return self.get(ref)

    def versions(self, ref: FunctionRef) -> list[FunctionConfig]:
        """$LATEST, then the published versions in order."""
        return [self.latest(ref), *self.repo.published(key_of(ref))]

    def all(self) -> list[FunctionConfig]:
        """Every function's $LATEST."""
        return self.repo.all_latest()

    async def list_page(self, account: str, region: str, marker: str | None,
                        max_items: int) -> tuple[list[FunctionConfig], str | None]:
        return await self.repo.page(account, region, marker, max_items)

    def function_only(self, ref: FunctionRef) -> FunctionConfig:
        """The function itself; AWS's error when the reference names a version or alias."""
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
                "operation. Please specify either a function name or an unqualified function ARN.")
        return self.get(ref)

    # -- writes ---------------------------------------------------------------------------
    async def create(self, ref: FunctionRef, *, zip_file: bytes, runtime: str | None, handler: str | None,
                     role: str, **config: Any) -> FunctionConfig:
        if self.repo.latest(key_of(ref)) is not None:
            raise ResourceConflictException(f"Function already exist: {ref.name}")
        check_runtime(self._catalog, runtime)
        check_tag_count(config.get("tags") or {})
        check_memory(config.get("memory_size"))
        check_environment(config.get("environment") or {})
        code = await self._code.store(zip_file)
        check_total_size(code, config.get("layers") or ())
        cfg = FunctionConfig(region=ref.region, account_id=ref.account_id, name=ref.name,
                             runtime=runtime, handler=handler, role=role, code=code,
                             **{k: v for k, v in config.items() if v is not None})
        await self.repo.create(cfg)  # the store refuses a name taken meanwhile
        self._settler.schedule(cfg)
        return cfg

    async def update_code(self, ref: FunctionRef, zip_file: bytes, revision_id: str | None) -> FunctionConfig:
        self.updatable(ref, revision_id)
        code = await self._code.store(zip_file)
        current = self.updatable(ref, revision_id)
        check_total_size(code, current.layers)
        return await self._begin_update(current, replace(current, code=code))

    async def update_configuration(self, ref: FunctionRef, revision_id: str | None,
                                   **changes: Any) -> FunctionConfig:
        current = self.updatable(ref, revision_id)
        if changes.get("runtime") is not None:
            check_runtime(self._catalog, changes["runtime"])
        check_memory(changes.get("memory_size"))
        if changes.get("environment") is not None:
            check_environment(changes["environment"])
        updates = {k: v for k, v in changes.items() if v is not None}
        if "layers" in updates:
            check_total_size(current.code, updates["layers"])
        return await self._begin_update(current, replace(current, **updates))

    async def save_latest(self, latest: FunctionConfig, updated: FunctionConfig) -> FunctionConfig:
        """Store a change to $LATEST's function-level settings (aliases, policies, tags,
        concurrency, asynchronous invocation), if $LATEST is still `latest`."""
        await self.repo.save(latest, updated)
        return updated

    async def delete(self, ref: FunctionRef) -> None:
        """The whole function, or one published version when the qualifier names it."""
        latest = self.latest(ref)
        if ref.qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function.")
        if ref.qualifier is None:
            await self.repo.delete_function(latest)
            return
        version = self.get(ref)
        # the version's function-level settings go first, then the version itself
        kept_provisioned = {q: p for q, p in latest.provisioned.items() if q != version.version}
        kept_event_invoke = {q: s for q, s in latest.event_invoke.items() if q != version.version}
        if kept_provisioned != latest.provisioned or kept_event_invoke != latest.event_invoke:
            await self.save_latest(latest, replace(latest, provisioned=kept_provisioned,
                                                   event_invoke=kept_event_invoke))
        await self.repo.delete_version(version)

    # -- rules ------------------------------------------------------------------------------
    def updatable(self, ref: FunctionRef, revision_id: str | None) -> FunctionConfig:
        """$LATEST, if it may be changed now (AWS's error otherwise)."""
        cfg = self.latest(ref)
        if ref.qualifier not in (None, cfg.version):
            raise ResourceNotFoundException(f"Function not found: {ref.arn}")
        if revision_id is not None and revision_id != cfg.revision_id:
            raise PreconditionFailedException(revision_mismatch())
        if cfg.state is FunctionState.PENDING:
            raise ResourceConflictException(function_not_ready(cfg.state.value))
        if cfg.last_update_status is LastUpdateStatus.IN_PROGRESS:
            raise ResourceConflictException(update_in_progress(cfg.arn))
        return cfg

    async def _begin_update(self, current: FunctionConfig, changed: FunctionConfig) -> FunctionConfig:
        cfg = replace(begin_update(changed), last_modified=aws_timestamp(), revision_id=new_revision_id(),
                      generation=current.generation + 1)
        await self.repo.save(current, cfg)
        self._settler.schedule(cfg)
        return cfg
