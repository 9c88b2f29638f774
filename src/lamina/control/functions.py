"""Functions: create, read, list, update code and configuration, delete.

Domain rules plus calls to the repository (the store decides, memory caches; see
`repository`); no HTTP here. Reads that an invoke needs (`get`, `route`) come from memory;
lists come from the store. A change to code or configuration makes LastUpdateStatus
InProgress until `settling` has prepared it; a second change meanwhile is refused with
409, and so is a change to a function still Pending, as AWS refuses them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

from lamina.control.code import CodeStore
from lamina.control.layers import check_total_size
from lamina.control.repository import FunctionRepository
from lamina.control.rules import (
    check_code_updatable,
    check_environment,
    check_memory,
    check_runtime,
    check_tag_count,
)
from lamina.control.settling import Settler, begin_update
from lamina.domain.messages import function_not_ready, revision_mismatch, update_in_progress
from lamina.domain.model import (
    LATEST,
    FunctionConfig,
    FunctionKey,
    FunctionState,
    LastUpdateStatus,
    UpdateRuntimeOn,
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
from lamina.runtimes import lifecycle
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.runtimes.versions import runtime_version_arn

log = logging.getLogger("lamina.control")


def key_of(ref: FunctionRef) -> FunctionKey:
    return FunctionKey(ref.account_id, ref.region, ref.name)


def no_image(runtime: str) -> str | None:
    """The image digest when no image is known: runtime versions name the runtime alone."""
    return None


class FunctionService:
    """`today` is the date runtime lifecycle rules are judged on (`lamina.runtimes.lifecycle`);
    `image_digest(runtime)` the digest of the image that serves `runtime` now, which the
    runtime version ARNs name (`current_runtime_version`)."""

    def __init__(self, repo: FunctionRepository, code: CodeStore, catalog: RuntimeCatalog,
                 settler: Settler, *, today: Callable[[], date] = lifecycle.today,
                 image_digest: Callable[[str], str | None] = no_image) -> None:
        self.repo = repo
        self._code = code
        self._catalog = catalog
        self._settler = settler
        self._today = today
        self._image_digest = image_digest

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
        check_runtime(self._catalog, runtime, on=self._today())
        self._say_fallback(ref.name, runtime)
        check_tag_count(config.get("tags") or {})
        check_memory(config.get("memory_size"))
        check_environment(config.get("environment") or {})
        code = await self._code.store(zip_file)
        check_total_size(code, config.get("layers") or ())
        cfg = FunctionConfig(region=ref.region, account_id=ref.account_id, name=ref.name,
                             runtime=runtime, handler=handler, role=role, code=code,
                             **{k: v for k, v in config.items() if v is not None})
        cfg = replace(cfg, runtime_version_arn=self._runtime_version_on_update(None, cfg))
        await self.repo.create(cfg)  # the store refuses a name taken meanwhile
        self._settler.schedule(cfg)
        return cfg

    def _say_fallback(self, name: str, runtime: str | None) -> None:
        plan = self._catalog.plan(runtime or "")
        if plan is not None and plan.note:
            log.warning("function %s: %s", name, plan.note)

    # -- runtime versions -----------------------------------------------------------------
    def current_runtime_version(self, region: str, runtime: str) -> str:
        """The ARN of the runtime version that serves `runtime` now: the one place where a
        RuntimeVersionArn is made (from the digest of the image serving it)."""
        return runtime_version_arn(region, runtime, self._image_digest(runtime))

    def kept_runtime_versions(self, region: str, runtime: str) -> list[str]:
        """Blocking: the runtime versions of `runtime` whose images are on this host."""
        return self._catalog.kept_versions(runtime, region)

    def runtime_version_arn(self, cfg: FunctionConfig) -> str | None:
        """The RuntimeVersionArn `cfg` runs on (its RuntimeVersionConfig): pinned under Manual,
        the one of its last update under FunctionUpdate, the current one under Auto. None for
        functions with no managed runtime (container images)."""
        if cfg.package_type != "Zip" or cfg.runtime is None:
            return None
        if cfg.runtime_update_on is not UpdateRuntimeOn.AUTO and cfg.runtime_version_arn is not None:
            return cfg.runtime_version_arn
        return self.current_runtime_version(cfg.region, cfg.runtime)

    def _runtime_version_on_update(self, current: FunctionConfig | None, changed: FunctionConfig) -> str | None:
        """What a created or updated $LATEST runs on: a Manual pin stays while the runtime does;
        otherwise the runtime moves to its current version, as AWS moves it at an update."""
        if changed.package_type != "Zip" or changed.runtime is None:
            return None
        if (current is not None and changed.runtime_update_on is UpdateRuntimeOn.MANUAL
                and changed.runtime == current.runtime and changed.runtime_version_arn is not None):
            return changed.runtime_version_arn
        return self.current_runtime_version(changed.region, changed.runtime)

    async def update_code(self, ref: FunctionRef, zip_file: bytes, revision_id: str | None) -> FunctionConfig:
        check_code_updatable(self.updatable(ref, revision_id).runtime, on=self._today())
        code = await self._code.store(zip_file)
        current = self.updatable(ref, revision_id)
        check_total_size(code, current.layers)
        return await self._begin_update(current, replace(current, code=code), revision_id)

    async def update_configuration(self, ref: FunctionRef, revision_id: str | None,
                                   **changes: Any) -> FunctionConfig:
        current = self.updatable(ref, revision_id)
        if changes.get("runtime") is not None:
            check_runtime(self._catalog, changes["runtime"], on=self._today(), updating=True)
            self._say_fallback(ref.name, changes["runtime"])
        check_memory(changes.get("memory_size"))
        if changes.get("environment") is not None:
            check_environment(changes["environment"])
        updates = {k: v for k, v in changes.items() if v is not None}
        if "layers" in updates:
            check_total_size(current.code, updates["layers"])
        return await self._begin_update(current, replace(current, **updates), revision_id)

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

    async def _begin_update(self, current: FunctionConfig, changed: FunctionConfig,
                            revision_id: str | None) -> FunctionConfig:
        cfg = replace(begin_update(changed), last_modified=aws_timestamp(), revision_id=new_revision_id(),
                      generation=current.generation + 1,
                      runtime_version_arn=self._runtime_version_on_update(current, changed))
        try:
            await self.repo.save(current, cfg)
        except PreconditionFailedException:
            # another change was stored between `updatable` and this write: answer as if this
            # request had come after it, in AWS's order (a RevisionId given no longer matches;
            # else that update is in progress)
            latest = self.repo.latest(current.key)
            if revision_id is None and latest is not None \
                    and latest.last_update_status is LastUpdateStatus.IN_PROGRESS:
                raise ResourceConflictException(update_in_progress(latest.arn)) from None
            raise
        self._settler.schedule(cfg)
        return cfg
