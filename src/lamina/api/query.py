"""A raw query string split into its decoded pairs, as SigV4 and the model's routes read it.

Pairs keep their order and repeats; `+` stays a plus (AWS's SDKs encode a space as `%20`),
and a malformed escape decodes as `urllib.parse.unquote` decodes it, never raising.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["split_query"]


def split_query(raw_query: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs
