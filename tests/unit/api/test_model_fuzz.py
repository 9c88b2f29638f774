"""Fuzzing the API's request parsing (`LambdaModel.parse` and `jsonbody.loads`) with hostile input.

Generators: JSON documents shaped like each operation's input (its own member names, with
values of every JSON type, nested deep and wide), the same documents serialised and then
damaged (truncated, bytes flipped), bodies no JSON parser should take kindly to (nesting
thousands deep, numbers thousands of digits long, NaN, lone surrogates, UTF-16, control
bytes), and noise in the uri, query and header members. Whatever the input, the result is
the operation's parameters or an ApiError (AWS-shaped), never another exception, and a
parsed value can always be rendered back (no lone surrogate survives to break UTF-8).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina import errors
from lamina.api import jsonbody
from lamina.api.model import LambdaModel
from tests.fuzzing import fuzz, fuzz_settings

pytestmark = fuzz

MODEL = LambdaModel()
OPERATIONS = sorted(MODEL.service.operation_names)

text = st.text(max_size=20) | st.sampled_from(["\ud800", "a\udfffb", "\x00", "é", "9" * 5000, "NaN", "$LATEST"])
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(text, inner, max_size=4), max_leaves=20)


def deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "open":  # never closed
        return b"[" * depth
    return b'{"a":[' * (depth // 2) + b"1" + b"]}" * (depth // 2)


hostile_bodies = st.one_of(
    st.builds(deep, st.sampled_from([999, 1000, 1001, 1500, 5000, 100_000]),
              st.sampled_from(["array", "object", "open", "mixed"])),
    st.sampled_from([b"1" * 5000, b"-" + b"1" * 1001, b"0." + b"1" * 1001, b"1e" + b"9" * 5000, b"[NaN]",
                     b'{"a": Infinity}', b'"\\ud800"', b'{"\\udfff": 1}', "{}".encode("utf-16"),
                     b"\xef\xbb\xbf{}", b"\xff\xfe\x00", b"\x00" * 8, b"{" + b" " * 10_000, b'"' + b"\\" * 101]),
    st.binary(max_size=64),
)


@st.composite
def shaped_body(draw: st.DrawFn, operation: str) -> bytes:
    """A JSON body that mostly uses the operation's own member names, sometimes damaged."""
    shape = MODEL.operation(operation).input_shape
    members = sorted(shape.members) if shape is not None else []
    keys = st.sampled_from(members) | text if members else text
    document = draw(st.dictionaries(keys, documents, max_size=6) | documents)
    raw = json.dumps(document).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "truncate", "flip"]))
    if damage == "truncate" and raw:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1:]
    return raw


@st.composite
def request(draw: st.DrawFn) -> tuple[str, dict[str, str], list[tuple[str, str]], dict[str, str], bytes]:
    operation = draw(st.sampled_from(OPERATIONS))
    shape = MODEL.operation(operation).input_shape
    members = shape.members if shape is not None else {}
    uri = {name: draw(text) for name, m in members.items() if m.serialization.get("location") == "uri"}
    query = [(m.serialization.get("name", name), draw(text)) for name, m in members.items()
             if m.serialization.get("location") == "querystring" and draw(st.booleans())]
    headers = {m.serialization.get("name", name).lower(): draw(text) for name, m in members.items()
               if m.serialization.get("location") == "header" and draw(st.booleans())}
    body = draw(shaped_body(operation) | hostile_bodies)
    return operation, uri, query, headers, body


def _parse(operation: str, uri: dict[str, str], query: list[tuple[str, str]], headers: dict[str, str],
           body: bytes) -> dict[str, Any] | errors.ApiError:
    try:
        return MODEL.parse(MODEL.operation(operation), uri, query, headers, body)
    except errors.ApiError as exc:
        return exc


@fuzz
@fuzz_settings
@given(request())
def test_hostile_requests_parse_or_get_aws_errors(req: tuple[str, dict[str, str], list[tuple[str, str]],
                                                             dict[str, str], bytes]) -> None:
    outcome = _parse(*req)
    if isinstance(outcome, errors.ApiError):
        assert 400 <= outcome.status < 500, outcome
        MODEL.render_error(outcome)  # renders (a message may quote the input)
    else:
        json.dumps(outcome, default=repr).encode()  # no lone surrogate left in what was parsed


@fuzz
@fuzz_settings
@given(hostile_bodies | st.builds(lambda d: json.dumps(d).encode("utf-8", "surrogatepass"), documents))
def test_json_bodies_load_or_get_invalid_request_content(body: bytes) -> None:
    try:
        jsonbody.loads(body)
    except errors.InvalidRequestContentException as exc:
        assert exc.message.startswith(jsonbody.PREFIX)


@pytest.mark.parametrize(("body", "accepted"), [
    (deep(1000, "array"), True), (deep(1000, "object"), True), (deep(1000, "mixed"), True),
    (deep(1001, "array"), False), (deep(1001, "object"), False), (deep(100_000, "open"), False),
])
def test_nesting_limit_is_jacksons(body: bytes, accepted: bool) -> None:
    """Up to 1,000 levels are read (even past Python's own recursion limit); the 1,001st is refused
    in Jackson's words, which AWS's front end answers with."""
    if accepted:
        assert jsonbody.loads(body) is not None
        return
    with pytest.raises(errors.InvalidRequestContentException) as caught:
        jsonbody.loads(body)
    assert caught.value.message == (
        "Could not parse request body into json: Could not parse payload into json: Document nesting depth (1001) "
        "exceeds the maximum allowed (1000, from `StreamReadConstraints.getMaxNestingDepth()`)")


@pytest.mark.parametrize(("body", "detail"), [
    (b"1" * 1001, "Number value length (1001) exceeds the maximum allowed (1000, from "
                  "`StreamReadConstraints.getMaxNumberLength()`)"),
    (b"[NaN]", "Non-standard token 'NaN': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"),
])
def test_number_limits_are_jacksons(body: bytes, detail: str) -> None:
    with pytest.raises(errors.InvalidRequestContentException) as caught:
        jsonbody.loads(body)
    assert caught.value.message.startswith(jsonbody.PREFIX + detail)
    assert jsonbody.loads(b"1" * 1000) == int("1" * 1000)
