"""How deeply a JSON text nests, measured without parsing it.

Python's decoder and encoder spend one level of the interpreter's recursion limit per
nesting level, so a hostile document (from a caller or from a function's response) can
make them raise RecursionError. Code that must never fail on such text asks
`nests_deeper_than` first. Linear in the text; strings are skipped, so brackets inside
them do not count.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = 4096


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether brackets outside strings ever nest more than `limit` deep."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    for start in range(0, len(brackets), _STEP):
        chunk = brackets[start:start + _STEP]
        opens = chunk.count("[") + chunk.count("{")
        if depth + opens <= limit:  # cannot cross the limit inside this chunk
            depth += 2 * opens - len(chunk)
            continue
        for ch in chunk:
            depth += 1 if ch in "[{" else -1
            if depth > limit:
                return True
    return False
