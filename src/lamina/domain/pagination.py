"""Marker/MaxItems pagination, one scheme for every list operation.

A page is cut from items in a fixed order; its marker is opaque to clients (as AWS's
are): the base64 of the sort key of the last item returned. The next page starts after
that key, so items added or removed between calls shift nothing and repeat nothing. A
marker that Lamina did not issue gets InvalidParameterValueException.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from lamina.errors import InvalidParameterValueException

T = TypeVar("T")
Key = str | int


def encode_marker(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": key}).encode()).decode("ascii")


def decode_marker(marker: str) -> Key:
    """The key a marker of `encode_marker` holds; InvalidParameterValueException otherwise."""
    try:
        value = json.loads(base64.urlsafe_b64decode(marker.encode("ascii")))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        value = None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidParameterValueException("Invalid marker")
    return value


def paginate(items: Sequence[T], key: Callable[[T], Key], marker: str | None, max_items: int, *,
             descending: bool = False) -> tuple[list[T], str | None]:
    """One page of `items` (already in `key` order, descending if said so) after `marker`,
    at most `max_items` long, and the marker of the next page (None on the last)."""
    rest: Sequence[T] = items
    if marker:
        after = decode_marker(marker)
        if items and type(key(items[0])) is not type(after):
            raise InvalidParameterValueException("Invalid marker")  # a marker of another list
        rest = [item for item in items if _beyond(key(item), after, descending)]
    page = list(rest[:max(1, max_items)])
    more = len(rest) > len(page)
    return page, (encode_marker(key(page[-1])) if more and page else None)


def _beyond(value: Key, after: Key, descending: bool) -> bool:
    if isinstance(value, int) and isinstance(after, int):
        return value < after if descending else value > after
    return str(value) < str(after) if descending else str(value) > str(after)
