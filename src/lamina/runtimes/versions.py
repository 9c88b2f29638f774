"""Runtime versions as AWS names them: `arn:aws:lambda:<region>::runtime:<64 hex>`.

On AWS a runtime version ARN names one build of a managed runtime; on Lamina it names the
runtime image that serves a function's runtime. The 64 hex digits are the sha256 of the
runtime identifier and the image's digest, so the ARN changes exactly when the runtime or
the image does, and a function whose runtime is served by another runtime's image
(python3.12 on the python3.13 image) has an ARN of its own.

Invariants: `runtime_version_arn` is a pure function; every RuntimeVersionArn Lamina hands
out is made by it (through `FunctionService.current_runtime_version`); the digest None
stands for "no image" (a host interpreter, or an image not known yet).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["RUNTIME_VERSION_ARN", "runtime_version_arn", "runtime_version_region"]

# What a RuntimeVersionArn looks like (botocore's model pattern, anchored)
RUNTIME_VERSION_ARN = re.compile(r"arn:(aws[a-zA-Z-]*):lambda:([a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1})::runtime:.+")


def runtime_version_arn(region: str, runtime: str, image_digest: str | None) -> str:
    """The ARN of the runtime version that `image_digest` (None: no image) makes of `runtime`."""
    digest = hashlib.sha256(f"{runtime}\0{image_digest or ''}".encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


def runtime_version_region(arn: str) -> str | None:
    """The region a runtime version ARN names; None if it is not one."""
    match = RUNTIME_VERSION_ARN.fullmatch(arn)
    return match.group(2) if match else None
