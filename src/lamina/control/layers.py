"""Layers: immutable versions of shared code that functions mount under /opt, in order.

Version numbers grow per layer and are never reused (a deleted version's number stays
taken while any later one exists; the counter is the highest number ever stored plus
what deletion left behind, kept in memory and rebuilt from the store at start).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from lamina.domain.arns import parse_arn
from lamina.domain.model import CodeRef, LayerRef, LayerVersion, Policy
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException
from lamina.packages import MAX_UNZIPPED_BYTES, inspect_zip
from lamina.store.metadata import SqlMetadataStore
from lamina.store.protocols import BlobStore

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
    def __init__(self, store: SqlMetadataStore, blobs: BlobStore) -> None:
        self._store = store
        self._blobs = blobs
        self._layers: dict[LayerKey, dict[int, LayerVersion]] = {}
        self._counters: dict[LayerKey, int] = {}

    def load(self) -> None:
        for layer in self._store.all_layer_versions():
            key = (layer.account_id, layer.region, layer.name)
            self._layers.setdefault(key, {})[layer.version] = layer
            self._counters[key] = max(self._counters.get(key, 0), layer.version)

    async def publish(self, name: LayerName, *, zip_file: bytes, description: str | None,
                      compatible_runtimes: list[str] | None, compatible_architectures: list[str] | None,
                      license_info: str | None) -> LayerVersion:
        def store_code() -> CodeRef:
            prepared = inspect_zip(zip_file)
            self._blobs.put(zip_file)
            self._blobs.extracted(prepared.blob_key)
            return CodeRef(prepared.blob_key, prepared.sha256_b64, prepared.size, prepared.unzipped_size)

        code = await asyncio.get_running_loop().run_in_executor(None, store_code)
        number = self._counters.get(name.key, 0) + 1
        layer = LayerVersion(name.account_id, name.region, name.name, number, code, description or "",
                             tuple(compatible_runtimes or ()), tuple(compatible_architectures or ()), license_info)
        self._store.put_layer_version(layer)
        self._counters[name.key] = number
        self._layers.setdefault(name.key, {})[number] = layer
        return layer

    def set_policy(self, layer: LayerVersion, policy: Policy) -> None:
        updated = replace(layer, policy=policy)
        self._store.put_layer_version(updated)
        self._layers[(layer.account_id, layer.region, layer.name)][layer.version] = updated

    def get(self, name: LayerName, version: int) -> LayerVersion:
        if version < 1:
            raise InvalidParameterValueException("Layer Version Cannot be less than 1")
        layer = self._layers.get(name.key, {}).get(version)
        if layer is None:
            raise ResourceNotFoundException(f"Layer version {name.arn}:{version} does not exist.")
        return layer

    def versions(self, name: LayerName) -> list[LayerVersion]:
        return [v for _n, v in sorted(self._layers.get(name.key, {}).items(), reverse=True)]

    def latest_of_each(self, account_id: str, region: str) -> list[LayerVersion]:
        out = []
        for (account, reg, _name), versions in sorted(self._layers.items()):
            if account == account_id and reg == region and versions:
                out.append(versions[max(versions)])
        return out

    def delete(self, name: LayerName, version: int) -> None:
        if self._layers.get(name.key, {}).pop(version, None) is not None:
            self._store.delete_layer_version(name.account_id, name.region, name.name, version)

    def resolve_for_function(self, arns: list[str], region: str) -> tuple[LayerRef, ...]:
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
            layer = self._layers.get((parsed.account, parsed.region, parsed.name), {}).get(int(parsed.qualifier))
            if layer is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            refs.append(LayerRef(arn, layer.code))
        return tuple(refs)


def check_total_size(code: CodeRef, layers: tuple[LayerRef, ...]) -> None:
    total = code.unzipped_size + sum(r.code.unzipped_size for r in layers)
    if layers and total > MAX_UNZIPPED_BYTES:
        raise InvalidParameterValueException(
            f"Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED_BYTES} bytes. "
            f"The actual size is {total} bytes.")
