"""Aliases: named pointers to a version, optionally routing a share of invokes to one more.

Aliases are a function-level setting kept on `$LATEST`; each has its own RevisionId.
Provisioned concurrency follows an alias that moves by itself (`concurrency.follow`).
Resolution for reads and invokes lives in `FunctionService.get`/`route`; this module
creates, changes and removes them with AWS's validation and messages.
"""

from __future__ import annotations

from dataclasses import replace

from lamina.control.functions import FunctionService
from lamina.domain.messages import revision_mismatch
from lamina.domain.model import LATEST, Alias, FunctionConfig, new_revision_id
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)


def alias_arn(latest: FunctionConfig, name: str) -> str:
    return f"{latest.arn}:{name}"


class AliasService:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    async def create(self, ref: FunctionRef, name: str, version: str, description: str | None,
               routing: dict[str, float] | None) -> tuple[FunctionConfig, Alias]:
        latest = self._functions.latest(ref)
        if name in latest.aliases:
            raise ResourceConflictException(f"Alias already exists: {alias_arn(latest, name)}")
        self._check(ref, version, routing or {})
        alias = Alias(name, version, description or "", dict(routing or {}))
        await self._save(latest, {**latest.aliases, name: alias})
        return latest, alias

    def get(self, ref: FunctionRef, name: str) -> tuple[FunctionConfig, Alias]:
        latest = self._functions.latest(ref)
        alias = latest.aliases.get(name)
        if alias is None:
            raise ResourceNotFoundException(f"Cannot find alias arn: {alias_arn(latest, name)}")
        return latest, alias

    def list(self, ref: FunctionRef, function_version: str | None) -> list[Alias]:
        latest = self._functions.latest(ref)
        return [a for _n, a in sorted(latest.aliases.items())
                if function_version is None or a.function_version == function_version]

    async def update(self, ref: FunctionRef, name: str, *, version: str | None, description: str | None,
               routing: dict[str, float] | None, revision_id: str | None) -> tuple[FunctionConfig, Alias]:
        latest = self._functions.latest(ref)
        alias = latest.aliases.get(name)
        if alias is None:
            raise ResourceNotFoundException(f"Alias not found: {alias_arn(latest, name)}")
        if revision_id is not None and revision_id != alias.revision_id:
            raise PreconditionFailedException(revision_mismatch())
        changed = replace(alias, function_version=version or alias.function_version,
                          description=alias.description if description is None else description,
                          routing=alias.routing if routing is None else dict(routing),
                          revision_id=new_revision_id())
        self._check(ref, changed.function_version, changed.routing)
        await self._save(latest, {**latest.aliases, name: changed})
        return latest, changed

    async def delete(self, ref: FunctionRef, name: str) -> None:
        latest, _alias = self.get(ref, name)
        updated = replace(latest, aliases={n: a for n, a in latest.aliases.items() if n != name},
                          provisioned={q: p for q, p in latest.provisioned.items() if q != name},
                          event_invoke={q: s for q, s in latest.event_invoke.items() if q != name})
        await self._functions.save_latest(latest, updated)

    def _check(self, ref: FunctionRef, version: str, routing: dict[str, float]) -> None:
        self._version(ref, version)
        if not routing:
            return
        if len(routing) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1")
        if version == LATEST or LATEST in routing:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version")
        for extra in routing:
            if extra == version:
                raise InvalidParameterValueException(
                    f"Invalid function version {extra}. Function version {extra} is already included in routing "
                    "configuration.")
            self._version(ref, extra)

    def _version(self, ref: FunctionRef, version: str) -> None:
        if version != LATEST and not version.isdigit():
            raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:{version}")
        self._functions.get(FunctionRef(ref.account_id, ref.region, ref.name, version))

    async def _save(self, latest: FunctionConfig, aliases: dict[str, Alias]) -> None:
        await self._functions.save_latest(latest, replace(latest, aliases=aliases))
