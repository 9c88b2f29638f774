"""Code download URLs: issued by GetFunction and GetLayerVersion, and honoured by the
`/_lamina/code/` endpoint only while their owner still holds that code.

An owner is the qualified ARN a URL was issued for (`function:name:qualifier` or
`layer:name:version`); `current_code` is the one place that turns it back into a blob key.
"""

from __future__ import annotations

from lamina.api.handlers.context import Services
from lamina.control.layers import LayerName
from lamina.domain.arns import parse_arn
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException

__all__ = ["code_location", "current_code"]


def code_location(s: Services, owner: str, blob_key: str) -> str:
    """A download URL for `blob_key`, valid while `owner` holds it (and the URL's lifetime)."""
    return s.code_urls.issue(owner, blob_key)


async def current_code(s: Services, owner: str) -> str | None:
    """The blob key `owner` holds now; None once it is gone (deleted, or not an owner at all)."""
    arn = parse_arn(owner)  # arn:aws:lambda:region:account:(function|layer):name:(qualifier|version)
    if arn is None or len(arn.resource) != 3:
        return None
    region, account, (kind, name, qualifier) = arn.region, arn.account, arn.resource
    try:
        if kind == "function":
            return s.functions.get(FunctionRef(account, region, name, qualifier)).code.blob_key
        if kind == "layer" and qualifier.isdigit():
            return (await s.layers.get(LayerName(account, region, name), int(qualifier))).code.blob_key
    except (ResourceNotFoundException, InvalidParameterValueException):
        pass  # the owner is gone: its URLs answer NoSuchKey
    return None
