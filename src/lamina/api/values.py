"""Values converted between the wire and the model's Python types, with AWS's wording.

JSON members are read as AWS's Jackson front end reads them (scalars coerced the same way,
a value of the wrong kind refused with Jackson's message); uri, query and header members are
converted from text, refused with the model's validation wording. Outputs go back to JSON
types. Invariant: a conversion raises nothing but ApiError subclasses, whatever the input.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from typing import Any

from botocore.model import Shape

from lamina import errors
from lamina.api import jsonbody
from lamina.api.constraints import JAVA_TYPES, field_name, validation_message

__all__ = ["from_json", "header_text", "text_value", "to_json", "type_mismatch"]

# JSON may spell lone surrogates ("\\ud800"), which no UTF-8 text can hold
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _utf8_safe(text: str) -> str:
    """`text` as it can be stored and echoed: a lone surrogate becomes "?", as Java's UTF-8 encoder
    writes it."""
    return text if text.isascii() else _LONE_SURROGATE.sub("?", text)


def _bad_content(detail: str) -> errors.ApiError:
    return errors.InvalidRequestContentException(jsonbody.PREFIX + detail)


def type_mismatch(shape: Shape | None, value: Any) -> errors.ApiError:
    kind = shape.type_name if shape is not None else "structure"
    name = shape.name if shape is not None else "Object"
    java = JAVA_TYPES.get(kind, f"com.amazonaws.services.lambda.model.{name}")
    if isinstance(value, dict):
        found = "Object value (token `JsonToken.START_OBJECT`)"
    elif isinstance(value, list):
        found = "Array value (token `JsonToken.START_ARRAY`)"
    elif isinstance(value, bool):
        found = f"Boolean value (token `JsonToken.VALUE_{str(value).upper()}`)"
    elif isinstance(value, float):
        found = "Floating-point value (token `JsonToken.VALUE_NUMBER_FLOAT`)"
    elif isinstance(value, int):
        found = "Integer value (token `JsonToken.VALUE_NUMBER_INT`)"
    else:
        found = f'String "{value}": not a valid `{java}` value'
    return _bad_content(f"Cannot deserialize value of type `{java}` from {found}")


def from_json(shape: Shape, value: Any) -> Any:
    """A JSON value converted to the model's Python type; scalars are coerced as Jackson does."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise type_mismatch(shape, value)
        members = shape.members
        out: dict[str, Any] = {}
        for key, item in value.items():
            member = members.get(key)
            if member is not None and item is not None:
                out[key] = from_json(member, item)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise type_mismatch(shape, value)
        member = shape.member
        return [from_json(member, v) for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise type_mismatch(shape, value)
        value_shape = shape.value
        return {_utf8_safe(k): from_json(value_shape, v) for k, v in value.items()}
    if isinstance(value, (dict, list)):
        raise type_mismatch(shape, value)
    try:
        return _scalar(shape, value)
    except (ValueError, binascii.Error):
        raise type_mismatch(shape, value) from None


def _scalar(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "string":
        return _utf8_safe(value) if isinstance(value, str) else json.dumps(value)
    if kind in ("integer", "long"):
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(value)
    if kind in ("double", "float"):
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if kind == "blob":
        if not isinstance(value, str):
            raise ValueError(value)
        return base64.b64decode(value, validate=True)
    if kind == "timestamp":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.datetime.fromtimestamp(value, datetime.UTC)
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return value


def to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        return {k: to_json(members[k], v) for k, v in value.items() if v is not None and k in members}
    if kind == "list":
        member = shape.member
        return [to_json(member, v) for v in value]
    if kind == "map":
        value_shape = shape.value
        return {k: to_json(value_shape, v) for k, v in value.items()}
    if kind == "blob":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else value
    if kind == "timestamp" and isinstance(value, datetime.datetime):
        return value.timestamp()
    return value


def header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(header_text(v) for v in value)
    return str(value)


def text_value(shape: Shape, raw: str, name: str) -> Any:
    """A uri, query or header value converted to the member's type."""
    kind = shape.type_name
    if kind == "string":
        return raw
    try:
        if kind == "boolean":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError(raw)
            return lowered == "true"
        return _scalar(shape, raw.strip())
    except (ValueError, binascii.Error):
        raise errors.ValidationException(validation_message([
            f"Value '{raw}' at '{field_name(name)}' failed to satisfy constraint: "
            f"Member must be a valid {JAVA_TYPES.get(kind, kind).rsplit('.', 1)[-1]}"])) from None
