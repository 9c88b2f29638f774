"""Layers: immutable versions of shared code that functions mount under /opt, in order.

Version numbers grow per layer and are never reused, even after the newest version is
deleted and the server restarts: the store hands them out (`next_layer_version`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from lamina.control.code import CodeStore
from lamina.domain.arns import parse_arn
from lamina.domain.model import CodeRef, LayerRef, LayerVersion, Policy
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException
from lamina.packages import MAX_UNZIPPED_BYTES
from lamina.store.protocols import MetadataStore

T = TypeVar("T")


class Run(Protocol):
    """Runs blocking store work off the event loop (`FunctionRepository.run`)."""

    def __call__(self, work: Callable[..., T], *args: object) -> Awaitable[T]: ...

MAX_LAYERS = 5
LayerKey = tuple[str, str, str]  # (account, region, layer name)


@dataclass(frozen=True)
class LayerName:
    account_id: str
    region: str
    name: str

    @property
    def key(self) -> LayerKey:
        return (self.account_id, self.region, self.name)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{self.name}"


def layer_name(value: str, *, region: str, account_id: str) -> LayerName:
    """A layer name or layer ARN (arn:aws:lambda:region:account:layer:name)."""
    arn = parse_arn(value)
    if arn is not None and arn.name is not None:
        return LayerName(arn.account, arn.region, arn.name)
    return LayerName(account_id, region, value)


class LayerService:
    """Layer versions as the store holds them: every read and write goes to the store, off
    the event loop (layers are read by the control plane only; environments get the merged
    trees through their functions' configurations)."""

    def __init__(self, store: MetadataStore, code: CodeStore, run: Run) -> None:
        self._store = store
        self._code = code
        self._run = run

    async def publish(self, name: LayerName, *, zip_file: bytes, description: str | None,
                      compatible_runtimes: list[str] | None, compatible_architectures: list[str] | None,
                      license_info: str | None) -> LayerVersion:
        code = await self._code.store(zip_file, extract=True)
        number = await self._run(self._store.next_layer_version, name.account_id, name.region, name.name)
        layer = LayerVersion(name.account_id, name.region, name.name, number, code, description or "",
                             tuple(compatible_runtimes or ()), tuple(compatible_architectures or ()), license_info)
        await self._run(self._store.put_layer_version, layer)
        return layer

    async def set_policy(self, layer: LayerVersion, policy: Policy) -> None:
        await self._run(self._store.put_layer_version, replace(layer, policy=policy))

    async def get(self, name: LayerName, version: int) -> LayerVersion:
        if version < 1:
            raise InvalidParameterValueException("Layer Version Cannot be less than 1")
        layer = await self._find(name, version)
        if layer is None:
            raise ResourceNotFoundException(f"Layer version {name.arn}:{version} does not exist.")
        return layer

    async def versions(self, name: LayerName) -> list[LayerVersion]:
        """Newest first."""
        return await self._run(self._store.layer_versions, name.account_id, name.region, name.name)

    async def latest_of_each(self, account_id: str, region: str) -> list[LayerVersion]:
        """The newest version of every layer of the region, by layer name."""
        newest: dict[str, LayerVersion] = {}
        for layer in await self._run(self._store.layer_versions, account_id, region, None):
            newest.setdefault(layer.name, layer)  # newest first within each name
        return [newest[n] for n in sorted(newest)]

    async def delete(self, name: LayerName, version: int) -> None:
        await self._run(self._store.delete_layer_version, name.account_id, name.region, name.name, version)

    async def resolve_for_function(self, arns: list[str], region: str) -> tuple[LayerRef, ...]:
        """Check a function's Layers as AWS does and return them in order."""
        if len(arns) > MAX_LAYERS:
            raise InvalidParameterValueException("Cannot reference more than 5 layers.")
        seen: dict[str, str] = {}
        refs = []
        for arn in arns:
            parsed = parse_arn(arn)  # the model checked the pattern: arn:…:layer:name:version
            assert parsed is not None and parsed.name is not None and parsed.qualifier is not None
            base = parsed.unqualified
            if parsed.region != region:
                raise InvalidParameterValueException(
                    f"Layers are not in the same region as the function. Layers are expected to be in region {region}.")
            if base in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced in the same function. "
                    f"{seen[base]} and {arn} are versions of the same layer.")
            seen[base] = arn
            layer = await self._find(LayerName(parsed.account, parsed.region, parsed.name), int(parsed.qualifier))
            if layer is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            refs.append(LayerRef(arn, layer.code))
        return tuple(refs)

    async def _find(self, name: LayerName, version: int) -> LayerVersion | None:
        return await self._run(self._store.get_layer_version, name.account_id, name.region, name.name, version)


def check_total_size(code: CodeRef, layers: tuple[LayerRef, ...]) -> None:
    total = code.unzipped_size + sum(r.code.unzipped_size for r in layers)
    if layers and total > MAX_UNZIPPED_BYTES:
        raise InvalidParameterValueException(
            f"Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED_BYTES} bytes. "
            f"The actual size is {total} bytes.")
