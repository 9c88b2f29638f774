"""Model constraints compiled into fast validators, with AWS's exact wording.

Every constraint in botocore's Lambda model (required, type, length, pattern, enum, range,
list and map members, nested structures) becomes a closure built once per shape; a failed
check appends AWS's "Value X at 'path' failed to satisfy constraint: …" text. The few places
where AWS itself departs from botocore's model are patched here, each with its evidence.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from botocore.model import Shape

from lamina import errors
from lamina.runtimes.lifecycle import create_blocked, today

Check = Callable[[Any, str, list[str]], None]

# AWS's own model differs from botocore's in a few places. Each entry names the operation and
# top-level member, and what AWS really does (recorded from AWS):
#   - Runtime on Create/UpdateFunctionConfiguration is not a model enum on AWS's side: an unknown
#     value gets InvalidParameterValueException "Value X at 'runtime' ... or be a valid ARN".
#   - Timeout stops at 900 seconds (botocore's model has no maximum); AWS words it as a
#     model constraint (ValidationException).
#   - CreateFunction: a plain function name longer than 64 characters is refused with a
#     validation-shaped message but class InvalidParameterValueException (ARNs may reach 140).
MODEL_PATCHES: dict[tuple[str, str], dict[str, Any]] = {
    ("CreateFunction", "Runtime"): {"enum": None},
    ("UpdateFunctionConfiguration", "Runtime"): {"enum": None},
    ("CreateFunction", "Timeout"): {"max": 900},
    ("UpdateFunctionConfiguration", "Timeout"): {"max": 900},
}
MAX_PLAIN_FUNCTION_NAME = 64

# The order in which AWS lists enum values in its messages (it is not the model's order).
_AWS_ENUM_ORDER: dict[str, tuple[str, ...]] = {
    "RecursiveLoop": ("Terminate", "Allow"),
    "InvokeMode": ("RESPONSE_STREAM", "BUFFERED"),
    "EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"),
    # recorded from AWS on 2026-01-12 (runtimes past their block-create date are left out)
    "Runtime": ("nodejs20.x", "python3.14", "provided.al2023", "python3.12", "python3.13", "nodejs24.x",
                "nodejs22.x", "java25", "python3.10", "python3.11", "java21", "ruby3.3", "ruby3.4", "ruby3.2",
                "python3.8", "python3.9", "java17", "nodejs16.x", "dotnet10", "dotnet8", "java11", "dotnet6",
                "nodejs18.x", "provided.al2", "java8.al2"),
}

JAVA_TYPES = {"string": "java.lang.String", "integer": "java.lang.Integer", "long": "java.lang.Long",
               "boolean": "java.lang.Boolean", "double": "java.lang.Double", "float": "java.lang.Float",
               "blob": "java.nio.ByteBuffer", "timestamp": "java.util.Date", "list": "java.util.List",
               "map": "java.util.Map"}
_NUMERIC = frozenset({"integer", "long", "double", "float"})


def field_name(member_path: str) -> str:
    """`VpcConfig.SubnetIds` -> `vpcConfig.subnetIds`, the field path AWS uses in messages."""
    return ".".join(part[:1].lower() + part[1:] for part in member_path.split("."))


# -- rendering values as AWS (Java) renders them ------------------------------------------------------

def _java_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else f"{value:.1f}"
    mantissa, exponent = f"{value:.16e}".split("e")
    mantissa = mantissa.rstrip("0")
    mantissa = mantissa + "0" if mantissa.endswith(".") else mantissa
    return f"{mantissa}E{int(exponent)}"


def _render(value: Any, shape: Shape | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, bytes):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    if isinstance(value, datetime.datetime):
        return value.strftime("%a %b %d %H:%M:%S UTC %Y")
    if isinstance(value, list):
        member = getattr(shape, "member", None)
        return "[" + ", ".join(_render(v, member) for v in value) + "]"
    if isinstance(value, dict):
        if shape is not None and shape.type_name == "structure":
            members = shape.members
            inner = ", ".join(f"{field_name(n)}={_render(value.get(n), s)}" for n, s in members.items())
            return f"{shape.name}({inner})"
        value_shape = getattr(shape, "value", None)
        return "{" + ", ".join(f"{k}={_render(v, value_shape)}" for k, v in value.items()) + "}"
    return str(value)


def _failure(value: Any, shape: Shape, path: str, constraint: str) -> str:
    if shape.metadata.get("sensitive"):
        shown = "Value"
    elif value is None:
        shown = "Value null"
    else:
        shown = f"Value '{_render(value, shape)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {constraint}"


def validation_message(failures: list[str]) -> str:
    count = len(failures)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(failures)


# -- compiled validators ----------------------------------------------------------------------------

def _enum_text(shape_name: str, values: list[str]) -> str:
    preferred = [v for v in _AWS_ENUM_ORDER.get(shape_name, ()) if v in values]
    ordered = preferred + [v for v in values if v not in preferred]
    return "[" + ", ".join(ordered) + "]"


def _describe(meta: Mapping[str, Any], shape: Shape) -> list[str]:
    """The constraints of `shape` (with `meta` in force) worded and ordered as AWS lists them."""
    out: list[str] = []
    kind = "value" if shape.type_name in _NUMERIC else "length"
    if meta.get("max") is not None:
        out.append(f"Member must have {kind} less than or equal to {meta['max']}")
    if meta.get("min") is not None:
        out.append(f"Member must have {kind} greater than or equal to {meta['min']}")
    if meta.get("pattern") is not None:
        out.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if meta.get("enum"):
        out.append(f"Member must satisfy enum value set: {_enum_text(shape.name, meta['enum'])}")
    return out


def _scalar_failures(meta: Mapping[str, Any], shape: Shape) -> Callable[[Any], list[str]] | None:
    """A function returning the failed constraints of one non-null value, or None if unconstrained."""
    texts = iter(_describe(meta, shape))
    numeric = shape.type_name in _NUMERIC
    hi = meta.get("max")
    lo = meta.get("min")
    hi_text = next(texts) if hi is not None else ""
    lo_text = next(texts) if lo is not None else ""
    regex = re.compile(meta["pattern"]) if meta.get("pattern") is not None else None
    regex_text = next(texts) if regex is not None else ""
    allowed = frozenset(meta["enum"]) if meta.get("enum") else None
    enum_text = next(texts) if allowed is not None else ""
    if hi is None and lo is None and regex is None and allowed is None:
        return None

    def failures(value: Any) -> list[str]:
        out: list[str] = []
        size = value if numeric else len(value)
        if hi is not None and size > hi:
            out.append(hi_text)
        if lo is not None and size < lo:
            out.append(lo_text)
        if regex is not None and isinstance(value, str) and regex.fullmatch(value) is None:
            out.append(regex_text)
        if allowed is not None and value not in allowed:
            out.append(enum_text)
        return out
    return failures


def _compile(shape: Shape, patch: Mapping[str, Any] | None = None,
             cache: dict[str, Check] | None = None) -> Check | None:
    """A checker appending AWS-worded failures for one non-null value of `shape` at `path`."""
    meta: dict[str, Any] = dict(shape.metadata)
    if patch:
        meta.update(patch)
    kind = shape.type_name
    if kind == "structure":
        return compile_structure(shape, {}, cache if cache is not None else {})
    own = _scalar_failures(meta, shape)
    if kind == "list":
        return _compile_list(shape, own, cache)
    if kind == "map":
        return _compile_map(shape, own, cache)
    if own is None:
        return None

    def check(value: Any, path: str, out: list[str]) -> None:
        for text in own(value):
            out.append(_failure(value, shape, path, text))
    return check


def _element_check(shape: Shape, cache: dict[str, Check] | None) -> tuple[Check | None, list[str]]:
    return _compile(shape, None, cache), _describe(shape.metadata, shape)


def _compile_list(shape: Shape, own: Callable[[Any], list[str]] | None,
                  cache: dict[str, Check] | None) -> Check | None:
    member: Shape = shape.member
    member_check, member_texts = _element_check(member, cache)
    scalar_members = member.type_name not in ("structure", "list", "map")
    summary = "Member must satisfy constraint: [" + ", ".join([*member_texts, "Member must not be null"]) + "]"
    if own is None and member_check is None:
        return None

    def check(value: Any, path: str, out: list[str]) -> None:
        if own is not None:
            out.extend(_failure(value, shape, path, text) for text in own(value))
        if member_check is None:
            return
        if scalar_members:
            probe: list[str] = []
            for item in value:
                if item is None:
                    probe.append("null")
                else:
                    member_check(item, path, probe)
                if probe:
                    out.append(_failure(value, shape, path, summary))
                    return
        else:
            for index, item in enumerate(value, 1):
                if item is not None:
                    member_check(item, f"{path}.{index}.member", out)
    return check


def _compile_map(shape: Shape, own: Callable[[Any], list[str]] | None,
                 cache: dict[str, Check] | None) -> Check | None:
    key_shape: Shape = shape.key
    value_shape: Shape = shape.value
    key_check = _compile(key_shape, None, cache)
    value_check = _compile(value_shape, None, cache)
    key_summary = "Map keys must satisfy constraint: [" + ", ".join(_describe(key_shape.metadata, key_shape)) + "]"
    value_summary = ("Map value must satisfy constraint: ["
                     + ", ".join([*_describe(value_shape.metadata, value_shape), "Member must not be null"]) + "]")
    scalar_values = value_shape.type_name not in ("structure", "list", "map")
    if own is None and key_check is None and value_check is None:
        return None

    def check(value: Any, path: str, out: list[str]) -> None:
        if own is not None:
            out.extend(_failure(value, shape, path, text) for text in own(value))
        if key_check is not None:
            probe: list[str] = []
            for key in value:
                key_check(key, path, probe)
                if probe:
                    out.append(_failure(value, shape, path, key_summary))
                    break
        if value_check is not None:
            probe = []
            for key, item in value.items():
                if scalar_values:
                    if item is None:
                        probe.append("null")
                    else:
                        value_check(item, path, probe)
                    if probe:
                        out.append(_failure(value, shape, path, value_summary))
                        break
                elif item is not None:
                    value_check(item, f"{path}.{key}", out)
    return check


def compile_structure(shape: Shape, patches: Mapping[str, Mapping[str, Any]],
                       cache: dict[str, Check]) -> Check:
    if not patches and shape.name in cache:
        return cache[shape.name]
    members: list[tuple[str, str, Shape, bool, Check | None]] = []
    required = set(shape.required_members)

    def check(value: Any, path: str, out: list[str]) -> None:
        prefix = f"{path}." if path else ""
        for name, field, member_shape, is_required, member_check in members:
            item = value.get(name)
            if item is None:
                if is_required:
                    out.append(_failure(None, member_shape, prefix + field, "Member must not be null"))
            elif member_check is not None:
                member_check(item, prefix + field, out)

    if not patches:
        cache[shape.name] = check  # before compiling members: recursive shapes refer back to it
    for name, member_shape in shape.members.items():
        patch = patches.get(name)
        member_check = (_compile(member_shape, patch, cache) if member_shape.type_name != "structure"
                        else compile_structure(member_shape, {}, cache))
        members.append((name, field_name(name), member_shape, name in required, member_check))
    return check


# -- service-side rules that AWS words like validation failures ------------------------------------

def runtime_rule(enum: list[str]) -> Callable[[dict[str, Any]], None]:
    """An unknown runtime, refused as AWS refuses it: the message lists the runtimes that
    CreateFunction still accepts today (AWS leaves out those past their block-create date)."""
    allowed = frozenset(enum)

    def rule(params: dict[str, Any]) -> None:
        runtime = params.get("Runtime")
        if runtime is not None and runtime not in allowed:
            on = today()
            listed = _enum_text("Runtime", [r for r in enum if not create_blocked(r, on)])
            raise errors.InvalidParameterValueException(
                f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
                f"{listed} or be a valid ARN")
    return rule


def plain_name_rule(params: dict[str, Any]) -> None:
    name = params.get("FunctionName")
    if isinstance(name, str) and ":" not in name and len(name) > MAX_PLAIN_FUNCTION_NAME:
        raise errors.InvalidParameterValueException(validation_message([
            f"Value '{name}' at 'functionName' failed to satisfy constraint: Member must have length less than "
            f"or equal to {MAX_PLAIN_FUNCTION_NAME}"]))


# -- JSON body parsing ------------------------------------------------------------------------------
