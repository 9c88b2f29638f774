"""JSON request bodies read as AWS's front end reads them (Jackson with its default limits).

`loads` is the one way the API edge turns client bytes into JSON: operation bodies, the
Invoke payload (checked, then passed on untouched) and the client context. Invariants:
whatever the bytes, it returns a document or raises InvalidRequestContentException in
AWS's words ("Could not parse request body into json: Could not parse payload into json:
…"), never another exception (no RecursionError, no ValueError from int conversion); a
document nested deeper than 1,000 levels, a number longer than 1,000 digits and the
non-standard NaN/Infinity tokens are refused, as Jackson's StreamReadConstraints and
JsonReadFeature defaults refuse them. Call it on the event loop's thread only (see
`_recursion_room`).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from lamina.errors import InvalidRequestContentException
from lamina.jsondepth import nests_deeper_than

__all__ = ["MAX_DEPTH", "MAX_NUMBER_LENGTH", "json_error_detail", "loads"]

MAX_DEPTH = 1000            # StreamReadConstraints.DEFAULT_MAX_DEPTH
MAX_NUMBER_LENGTH = 1000    # StreamReadConstraints.DEFAULT_MAX_NUM_LEN
PREFIX = "Could not parse request body into json: Could not parse payload into json: "
TOO_DEEP = (f"Document nesting depth ({MAX_DEPTH + 1}) exceeds the maximum allowed ({MAX_DEPTH}, from "
            "`StreamReadConstraints.getMaxNestingDepth()`)")

_CONSTANT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN)', re.DOTALL)
_DIGITS = re.compile(r"[0-9]")


class _Refused(Exception):
    """Raised from inside the decoder's hooks; carries Jackson's words."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def loads(body: bytes) -> Any:
    """The JSON document in `body` (UTF-8, or UTF-16/32 as Jackson detects them)."""
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        raise _bad(json_error_detail(body)) from None
    try:
        return _decode(text)
    except RecursionError:
        pass  # nested deeper than this interpreter's stack allows by default: rare, checked below
    # (a syntax error lying between that depth and the 1,001st level is reported as the nesting)
    if nests_deeper_than(text, MAX_DEPTH):
        raise _bad(TOO_DEEP)
    try:
        with _recursion_room(MAX_DEPTH + 64):
            return _decode(text)
    except RecursionError:
        raise _bad(TOO_DEEP) from None


def json_error_detail(body: bytes) -> str:
    """What AWS (Jackson) says about a body that is not JSON, after 'Could not parse payload into json: '."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"Invalid UTF-8 start byte 0x{body[exc.start]:02x}" + _where(exc.start + 2)
    try:
        with _recursion_room(MAX_DEPTH + 64):
            _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _syntax_detail(text, exc)
    except _Refused as exc:
        return _refusal_detail(text, exc)
    except RecursionError:
        return TOO_DEEP
    return "Unexpected content"


def _decode(text: str) -> Any:
    """The document, with Jackson's refusals; syntax errors worded as Jackson words them."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _bad(_syntax_detail(text, exc)) from None
    except _Refused as exc:
        raise _bad(_refusal_detail(text, exc)) from None


def _bad(detail: str) -> InvalidRequestContentException:
    return InvalidRequestContentException(PREFIX + detail)


# -- hooks: Jackson's limits on numbers and its refusal of non-standard tokens ------------------------

def _number_length(text: str) -> int:
    return len(_DIGITS.findall(text)) if len(text) > MAX_NUMBER_LENGTH else len(text)


def _integer(text: str) -> int:
    if _number_length(text) > MAX_NUMBER_LENGTH:
        raise _Refused(f"Number value length ({_number_length(text)}) exceeds the maximum allowed "
                       f"({MAX_NUMBER_LENGTH}, from `StreamReadConstraints.getMaxNumberLength()`)")
    return int(text)


def _fraction(text: str) -> float:
    if _number_length(text) > MAX_NUMBER_LENGTH:
        raise _Refused(f"Number value length ({_number_length(text)}) exceeds the maximum allowed "
                       f"({MAX_NUMBER_LENGTH}, from `StreamReadConstraints.getMaxNumberLength()`)")
    return float(text)


def _constant(token: str) -> Any:
    raise _Refused(f"Non-standard token '{token}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow")


# built once: json.loads with hooks would build a decoder per call (a few µs on every Invoke)
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_int=_integer, parse_float=_fraction)


def _refusal_detail(text: str, exc: _Refused) -> str:
    if not exc.detail.startswith("Non-standard token"):
        return exc.detail  # StreamReadConstraints failures carry no location
    # the first such token outside a string is the one the decoder stopped at
    found = next((m for m in _CONSTANT.finditer(text) if m.group(1)), None)
    return exc.detail + (_where(_column(text, found.end())) if found else "")


# -- syntax errors in Jackson's words ------------------------------------------------------------

def _where(column: int) -> str:
    return ("\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); "
            f"line: 1, column: {column}]")


def _column(text: str, pos: int) -> int:
    line_start = text.rfind("\n", 0, pos) + 1
    return pos - line_start + 1


def _syntax_detail(text: str, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(text.rstrip()):
        return "Unexpected end-of-input" + _where(len(text) + 1)
    ch = text[exc.pos]
    column = exc.colno + 1 if exc.lineno == 1 else exc.colno
    if ch.isalpha():
        token = re.match(r'[^\s,:\[\]{}"]+', text[exc.pos:])
        return (f"Unrecognized token '{token.group(0) if token else ch}': was expecting (JSON String, Number, "
                "Array, Object or token 'null', 'true' or 'false')" + _where(column))
    code = ord(ch)
    control = code < 32 or 0x7F <= code <= 0x9F
    shown = f"(CTRL-CHAR, code {code})" if control else f"'{ch}' (code {code})"
    expected = ("was expecting double-quote to start field name" if "property name" in exc.msg else
                "expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')")
    return f"Unexpected character ({shown}): {expected}" + _where(column)


# -- nesting beyond the default recursion limit --------------------------------------------------

@contextlib.contextmanager
def _recursion_room(levels: int) -> Iterator[None]:
    """Python's recursion limit raised by `levels` for the duration of the block.

    CPython's decoder spends one level of the interpreter's recursion limit (1,000 by default,
    shared with the caller's frames) per nesting level, so without this a document Jackson
    accepts (up to 1,000 levels) could not be read. The limit is process-wide: the block must
    not await, and only one thread (the event loop's) may use it.
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(previous + levels)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)
