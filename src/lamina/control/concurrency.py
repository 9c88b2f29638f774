"""Reserved and provisioned concurrency: the account's pool and what each function takes.

Reserved concurrency is a function-level setting; provisioned concurrency is set per
published version or alias. Both are checked against the account's totals as the store
holds them (every function of the account, not just those this process has cached), with
AWS's messages. `follow` keeps the invoker's provisioned environments in line with the
settings: it hears every change of a cached function (see `repository`), so a setting
changed here, an alias moved, a version published or a restart all take the same path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lamina.control.functions import FunctionService, key_of
from lamina.domain.model import LATEST, FunctionConfig, ProvisionedSetting, aws_timestamp
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
)

Provision = Callable[[FunctionConfig, int], None]


def _version_of(latest: FunctionConfig, qualifier: str) -> str:
    alias = latest.aliases.get(qualifier)
    return alias.function_version if alias is not None else qualifier


def _wanted(latest: FunctionConfig | None) -> dict[str, int]:
    """Provisioned environments wanted per published version number."""
    out: dict[str, int] = {}
    for qualifier, setting in (latest.provisioned if latest is not None else {}).items():
        version = _version_of(latest, qualifier) if latest is not None else qualifier
        out[version] = out.get(version, 0) + setting.requested
    return out


class ConcurrencyService:
    def __init__(self, functions: FunctionService, *, limit: int, min_unreserved: int,
                 provision: Provision = lambda _cfg, _n: None) -> None:
        self.limit = limit
        self.min_unreserved = min_unreserved
        self._functions = functions
        self._provision = provision

    # -- the account ----------------------------------------------------------------------
    async def unreserved(self, account: str) -> int:
        latest = await self._functions.repo.account_latest(account)
        return self.limit - sum(c.reserved_concurrency or 0 for c in latest)

    # -- reserved ----------------------------------------------------------------------------
    async def put_reserved(self, ref: FunctionRef, reserved: int) -> FunctionConfig:
        cfg = self._functions.function_only(ref)
        everyone = await self._functions.repo.account_latest(ref.account_id)
        others = sum(c.reserved_concurrency or 0 for c in everyone if c.key != cfg.key)
        if self.limit - others - reserved < self.min_unreserved:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{self.min_unreserved}].")
        return await self._functions.save_latest(cfg, replace(cfg, reserved_concurrency=reserved))

    async def delete_reserved(self, ref: FunctionRef) -> None:
        cfg = self._functions.function_only(ref)
        await self._functions.save_latest(cfg, replace(cfg, reserved_concurrency=None))

    def get_reserved(self, ref: FunctionRef) -> int | None:
        return self._functions.function_only(ref).reserved_concurrency

    # -- provisioned (on published versions and aliases) ---------------------------------------
    def provisioned_target(self, ref: FunctionRef, *, latest_message: str) -> tuple[str, FunctionConfig]:
        """The qualifier (published version or alias) a provisioned-concurrency call names and
        the version it stands for, or AWS's error."""
        qualifier = ref.qualifier or ""
        try:
            latest = self._functions.latest(ref)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(f"Function not found: {ref.unqualified_arn}:{qualifier}") from None
        if qualifier == LATEST:
            raise InvalidParameterValueException(latest_message)
        if not qualifier.isdigit() and qualifier not in latest.aliases:
            raise ResourceNotFoundException(f"Cannot find alias arn: {ref.unqualified_arn}:{qualifier}")
        version = self._functions.get(ref)
        if version.version == LATEST:
            raise InvalidParameterValueException(latest_message)
        return qualifier, version

    async def put_provisioned(self, qualifier: str, version: FunctionConfig, requested: int) -> ProvisionedSetting:
        latest = self._latest_of(version)
        for other in latest.provisioned:
            if other != qualifier and _version_of(latest, other) == version.version:
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
            everyone = await self._functions.repo.account_latest(version.account_id)
            unreserved = self.limit - sum(c.reserved_concurrency or 0 for c in everyone)
            if requested > unreserved:
                raise InvalidParameterValueException(
                    "Specified ConcurrentExecutions for function is greater than account's unreserved "
                    f"concurrency [{unreserved}].")
            drawn = sum(p.requested for c in everyone if c.reserved_concurrency is None
                        for q, p in c.provisioned.items() if (c.name, q) != (version.name, version.version))
            if unreserved - drawn - requested < self.min_unreserved:
                raise InvalidParameterValueException(
                    "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
                    f"below its minimum value of [{self.min_unreserved}].")
        setting = ProvisionedSetting(requested, aws_timestamp())
        await self._functions.save_latest(latest, replace(latest, provisioned={**latest.provisioned,
                                                                               qualifier: setting}))
        return setting

    def get_provisioned(self, qualifier: str, version: FunctionConfig) -> ProvisionedSetting:
        setting = self._latest_of(version).provisioned.get(qualifier)
        if setting is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                "No Provisioned Concurrency Config found for this function")
        return setting

    async def delete_provisioned(self, qualifier: str, version: FunctionConfig) -> None:
        self.get_provisioned(qualifier, version)
        latest = self._latest_of(version)
        await self._functions.save_latest(
            latest, replace(latest, provisioned={q: p for q, p in latest.provisioned.items() if q != qualifier}))

    def list_provisioned(self, ref: FunctionRef) -> list[tuple[str, FunctionConfig, ProvisionedSetting]]:
        latest = self._functions.latest(ref)
        out = []
        for qualifier, setting in sorted(latest.provisioned.items()):
            version = self._functions.repo.version(key_of(ref), _version_of(latest, qualifier))
            if version is not None:
                out.append((qualifier, version, setting))
        return out

    def _latest_of(self, version: FunctionConfig) -> FunctionConfig:
        latest = self._functions.repo.latest(version.key)
        if latest is None:
            raise ResourceNotFoundException(f"Function not found: {version.arn}")
        return latest

    # -- following the store ---------------------------------------------------------------------
    def follow(self, before: FunctionConfig | None, after: FunctionConfig | None) -> None:
        """A repository listener: tell the invoker which versions now want how many
        provisioned environments (unchanged versions are left alone)."""
        cfg = after or before
        assert cfg is not None
        if cfg.published:
            if before is None and after is not None:  # a version appeared: published, or found at start
                wanted = _wanted(self._functions.repo.latest(after.key)).get(after.version)
                if wanted:
                    self._provision(after, wanted)
            return
        if after is None:
            return  # the function is gone, with its environments
        old, new = _wanted(before), _wanted(after)
        for number in old.keys() | new.keys():
            version = self._functions.repo.version(after.key, number)
            if old.get(number) != new.get(number) and version is not None:
                self._provision(version, new.get(number, 0))
