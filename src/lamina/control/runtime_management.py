"""Runtime management (Get/PutRuntimeManagementConfig): when a version's runtime version moves.

Each version, $LATEST or published, has its own setting (`FunctionConfig.runtime_update_on`
and, pinned under Manual, `runtime_version_arn`), stored in its row like the rest of its
configuration, so it survives a restart; publishing copies $LATEST's. Aliases are refused,
as AWS refuses them. A change gets a new RevisionId, so that it and a concurrent update
cannot both win (the store compares RevisionIds), and a new generation when it changes the
runtime version the version runs on; $LATEST is refused while Pending or while an update is
in progress, like any other change to it.

A version keeps the image its RuntimeVersionArn names: environments start on it (the
placement asks the catalog for a pinned image), and a server start keeps the images pinned
versions name when it deletes outdated ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from lamina.control.functions import FunctionService
from lamina.domain.model import LATEST, FunctionConfig, UpdateRuntimeOn, new_revision_id
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException
from lamina.runtimes.versions import runtime_version_region


class RuntimeManagementService:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    def get(self, ref: FunctionRef) -> FunctionConfig:
        """The version the request names ($LATEST when it names none)."""
        _refuse_alias(ref)
        return self._functions.get(ref)

    async def put(self, ref: FunctionRef, update_on: UpdateRuntimeOn, version_arn: str | None) -> FunctionConfig:
        """Set the version's mode (and, Manual, the runtime version it is pinned to)."""
        _refuse_alias(ref)
        latest = ref.qualifier in (None, LATEST)
        current = self._functions.updatable(ref, None) if latest else self._functions.get(ref)
        if update_on is UpdateRuntimeOn.MANUAL:
            if version_arn is None:
                raise InvalidParameterValueException(
                    "RuntimeVersionArn must be specified when UpdateRuntimeOn is Manual.")
            kept = await asyncio.to_thread(self._functions.kept_runtime_versions, current.region, current.runtime or "")
            self._check_runnable(current, version_arn, kept)
            pinned: str | None = version_arn
        elif version_arn is not None:
            raise InvalidParameterValueException(
                f"RuntimeVersionArn can only be specified when UpdateRuntimeOn is Manual, not {update_on.value}.")
        else:  # what it runs now: FunctionUpdate stays on it until the function is updated
            pinned = self._functions.runtime_version_arn(current)
        changed = replace(current, runtime_update_on=update_on, runtime_version_arn=pinned,
                          revision_id=new_revision_id())
        if self._functions.runtime_version_arn(changed) != self._functions.runtime_version_arn(current):
            # another runtime version: environments started on the old one stop serving
            changed = replace(changed, generation=current.generation + 1)
        await self._functions.repo.save(current, changed)
        return changed

    def _check_runnable(self, cfg: FunctionConfig, version_arn: str, kept: list[str]) -> None:
        """A Manual pin must name a runtime version of the version's own runtime that this
        host has: the one its runtime is served by now, one whose image is kept here (`kept`),
        or one that a version of this function runs (so that a function can be rolled back to
        what it ran before)."""
        if cfg.runtime is None or cfg.package_type != "Zip":
            raise InvalidParameterValueException(
                "Runtime management configuration is not supported for functions without a managed runtime.")
        if runtime_version_region(version_arn) != cfg.region:
            raise InvalidParameterValueException(
                f"The runtime version {version_arn} is not in the function's Region ({cfg.region}).")
        repo = self._functions.repo
        versions = [repo.latest(cfg.key), *repo.published(cfg.key)]
        known: set[str | None] = {self._functions.current_runtime_version(cfg.region, cfg.runtime), *kept}
        known.update(arn for v in versions if v is not None and v.runtime == cfg.runtime
                     for arn in (v.runtime_version_arn, self._functions.runtime_version_arn(v)))
        if version_arn not in known:
            raise InvalidParameterValueException(
                f"The runtime version {version_arn} is not a version of the {cfg.runtime} runtime "
                "that this Lamina host can run.")


def _refuse_alias(ref: FunctionRef) -> None:
    qualifier = ref.qualifier
    if qualifier is not None and qualifier != LATEST and not qualifier.isdigit():
        raise InvalidParameterValueException(
            f"The provided function name {ref.arn} is invalid. Aliases are not allowed.")
