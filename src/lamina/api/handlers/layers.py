"""Layers: PublishLayerVersion, GetLayerVersion(ByArn), ListLayerVersions, ListLayers,
DeleteLayerVersion.

A layer is named by name or ARN (`context.layer_ref`); content is accepted inline only.
ListLayerVersions pages newest first by version number, ListLayers by layer name (the
layer service's orders); both filter by CompatibleRuntime/CompatibleArchitecture first.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.code import code_location
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services, layer_ref, page
from lamina.control.layers import layer_name
from lamina.domain.model import LayerVersion
from lamina.errors import InvalidParameterValueException

__all__ = ["HANDLERS"]


def _output(s: Services, layer: LayerVersion) -> Output:
    return render.layer_version(layer, location=code_location(s, layer.arn, layer.code.blob_key))


def _compatible(layer: LayerVersion, p: Params) -> bool:
    runtime, arch = p.get("CompatibleRuntime"), p.get("CompatibleArchitecture")
    return (runtime is None or runtime in layer.compatible_runtimes) and \
        (arch is None or arch in layer.compatible_architectures)


def _version(layer: LayerVersion) -> int:
    return layer.version


def _name(layer: LayerVersion) -> str:
    return layer.name


async def publish_layer_version(s: Services, ctx: RequestContext, p: Params) -> Output:
    content = p["Content"]
    if "ZipFile" not in content:
        raise InvalidParameterValueException(
            "Lamina does not read layer content from S3 yet; upload the layer with ZipFile.")
    layer = await s.layers.publish(layer_ref(ctx, p), zip_file=content["ZipFile"], description=p.get("Description"),
                                   compatible_runtimes=p.get("CompatibleRuntimes"),
                                   compatible_architectures=p.get("CompatibleArchitectures"),
                                   license_info=p.get("LicenseInfo"))
    return _output(s, layer)


async def get_layer_version(s: Services, ctx: RequestContext, p: Params) -> Output:
    return _output(s, await s.layers.get(layer_ref(ctx, p), int(p["VersionNumber"])))


async def get_layer_version_by_arn(s: Services, ctx: RequestContext, p: Params) -> Output:
    base, _, version = p["Arn"].rpartition(":")  # the model's pattern ends the ARN in :<number>
    name = layer_name(base, region=ctx.region, account_id=ctx.account_id)
    return _output(s, await s.layers.get(name, int(version)))


async def list_layer_versions(s: Services, ctx: RequestContext, p: Params) -> Output:
    versions = [v for v in await s.layers.versions(layer_ref(ctx, p)) if _compatible(v, p)]
    listed, marker = page(versions, _version, p, descending=True)
    return {"LayerVersions": [render.layer_version_item(v) for v in listed], "NextMarker": marker}


async def list_layers(s: Services, ctx: RequestContext, p: Params) -> Output:
    layers = [v for v in await s.layers.latest_of_each(ctx.account_id, ctx.region) if _compatible(v, p)]
    listed, marker = page(layers, _name, p)
    return {"Layers": [render.layer_item(v) for v in listed], "NextMarker": marker}


async def delete_layer_version(s: Services, ctx: RequestContext, p: Params) -> Output:
    await s.layers.delete(layer_ref(ctx, p), int(p["VersionNumber"]))
    return {}


HANDLERS: dict[str, Handler] = {
    "PublishLayerVersion": publish_layer_version,
    "GetLayerVersion": get_layer_version,
    "GetLayerVersionByArn": get_layer_version_by_arn,
    "ListLayerVersions": list_layer_versions,
    "ListLayers": list_layers,
    "DeleteLayerVersion": delete_layer_version,
}
