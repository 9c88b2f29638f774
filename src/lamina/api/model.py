"""AWS Lambda's wire contract, driven by botocore's service model for `lambda`.

Routes requests to operations, parses each member from its model location (uri, query
string, header, JSON body, raw payload), validates every model constraint with AWS's exact
wording, and serialises outputs and errors as rest-json; `values` converts each value.
Invariants: no shape is written by hand; everything per operation is compiled once in
`LambdaModel()`; input and output dicts use the model's CamelCase member names and leave out
unset members; `parse` raises nothing but ApiError subclasses, whatever the bytes (JSON
bodies are read by `jsonbody`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.loaders import create_loader
from botocore.model import OperationModel, ServiceModel, Shape

from lamina import errors
from lamina.api import jsonbody
from lamina.api.constraints import (
    MODEL_PATCHES,
    Check,
    compile_structure,
    field_name,
    plain_name_rule,
    runtime_rule,
    validation_message,
)
from lamina.api.query import split_query
from lamina.api.values import from_json, header_text, text_value, to_json, type_mismatch

__all__ = ["LambdaModel", "OperationModel", "field_name", "json_error_detail"]

json_error_detail = jsonbody.json_error_detail


# -- per-operation compiled plans -------------------------------------------------------------------

_LABEL = re.compile(r"\{([^}+]+)(\+?)\}")


@dataclass(frozen=True)
class _Route:
    op: OperationModel
    method: str
    regex: re.Pattern[str]
    groups: tuple[tuple[str, str], ...]      # (regex group, member name)
    literal_query: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _InputPlan:
    uri: tuple[tuple[str, Shape], ...]
    query: dict[str, tuple[str, Shape]]         # query key -> (member, shape)
    headers: tuple[tuple[str, str, Shape], ...]  # (lower-case header, member, shape)
    payload: tuple[str, Shape] | None
    body: dict[str, tuple[str, Shape]] | None   # JSON key -> (member, shape); None: no JSON body
    check: Check
    rules: tuple[Callable[[dict[str, Any]], None], ...]


@dataclass(frozen=True)
class _OutputPlan:
    status: str | None
    headers: tuple[tuple[str, str], ...]         # (member, header name)
    payload: tuple[str, Shape] | None
    body: tuple[tuple[str, str, Shape], ...]     # (member, JSON key, shape)
    default_status: int
    json_content_type: bool


def _compile_route(op: OperationModel) -> _Route:
    uri = op.http["requestUri"]
    path, _, query = uri.partition("?")
    pattern: list[str] = []
    groups: list[tuple[str, str]] = []
    cursor = 0
    for index, label in enumerate(_LABEL.finditer(path)):
        pattern.append(re.escape(path[cursor:label.start()]))
        group = f"g{index}"
        pattern.append(f"(?P<{group}>.+)" if label.group(2) else f"(?P<{group}>[^/]+)")
        groups.append((group, label.group(1)))
        cursor = label.end()
    pattern.append(re.escape(path[cursor:].rstrip("/")))
    literal = tuple((k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p))
    return _Route(op, op.http["method"], re.compile("".join(pattern) + "/?"), tuple(groups), literal)


def _compile_input(op: OperationModel, service: ServiceModel) -> _InputPlan:
    shape = op.input_shape
    if shape is None:
        return _InputPlan((), {}, (), None, None, lambda v, p, o: None, ())
    members = shape.members
    payload_name = shape.serialization.get("payload")
    uri: list[tuple[str, Shape]] = []
    query: dict[str, tuple[str, Shape]] = {}
    headers: list[tuple[str, str, Shape]] = []
    body: dict[str, tuple[str, Shape]] = {}
    for name, member in members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            uri.append((name, member))
        elif location == "querystring":
            query[wire] = (name, member)
        elif location == "header":
            headers.append((wire.lower(), name, member))
        elif name != payload_name:
            body[wire] = (name, member)
    payload = (payload_name, members[payload_name]) if payload_name else None
    patches = {m: p for (o, m), p in MODEL_PATCHES.items() if o == op.name}
    check = compile_structure(shape, patches, {})
    rules: list[Callable[[dict[str, Any]], None]] = []
    if "Runtime" in patches and "Runtime" in members:
        rules.append(runtime_rule(list(service.shape_for("Runtime").metadata["enum"])))
    if op.name == "CreateFunction":
        rules.append(plain_name_rule)
    has_body = bool(body) or (payload is not None and payload[1].type_name == "structure")
    return _InputPlan(tuple(uri), query, tuple(headers), payload, body if has_body else None,
                      check, tuple(rules))


def _compile_output(op: OperationModel) -> _OutputPlan:
    default = int(op.http.get("responseCode", 200))
    shape = op.output_shape
    if shape is None:
        return _OutputPlan(None, (), None, (), default, False)
    status: str | None = None
    headers: list[tuple[str, str]] = []
    body: list[tuple[str, str, Shape]] = []
    payload_name = shape.serialization.get("payload")
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "statusCode":
            status = name
        elif location == "header":
            headers.append((name, wire))
        elif name != payload_name:
            body.append((name, wire, member))
    payload = (payload_name, shape.members[payload_name]) if payload_name else None
    json_type = bool(body) or payload is None or payload[1].type_name == "structure" or op.name == "Invoke"
    return _OutputPlan(status, tuple(headers), payload, tuple(body), default, json_type)


class LambdaModel:
    """Botocore's Lambda model compiled for serving: routing, parsing, validation, serialisation."""

    def __init__(self) -> None:
        loader = create_loader()
        self.service = ServiceModel(loader.load_service_model("lambda", "service-2"), "lambda")
        self._routes: dict[str, list[_Route]] = {}
        self._inputs: dict[str, _InputPlan] = {}
        self._outputs: dict[str, _OutputPlan] = {}
        for name in self.service.operation_names:
            op = self.service.operation_model(name)
            route = _compile_route(op)
            self._routes.setdefault(route.method, []).append(route)
            self._inputs[name] = _compile_input(op, self.service)
            self._outputs[name] = _compile_output(op)
        for routes in self._routes.values():
            # Routes that demand literal query parameters first; then the hot path; then the rest.
            routes.sort(key=lambda r: (not r.literal_query, r.op.name != "Invoke"))

    def operation(self, name: str) -> OperationModel:
        return self.service.operation_model(name)

    def match(self, method: str, raw_path: str,
              query: str | list[tuple[str, str]] = "") -> tuple[OperationModel, dict[str, str]] | None:
        """The operation for a request, and its percent-decoded path parameters.

        `raw_path` is the path as received (percent-encoded); it may carry `?query`. Operations
        whose requestUri holds a literal query (`?find=LayerVersion`) match only when it is present.
        """
        if "?" in raw_path:
            raw_path, _, query = raw_path.partition("?")
        pairs: list[tuple[str, str]] | None = None
        for route in self._routes.get(method.upper(), ()):
            found = route.regex.fullmatch(raw_path)
            if found is None:
                continue
            if route.literal_query:
                if pairs is None:
                    pairs = _query_pairs(query)
                if not all(p in pairs for p in route.literal_query):
                    continue
            return route.op, {member: unquote(found.group(g)) for g, member in route.groups}
        return None

    def parse(self, op: OperationModel, path_params: dict[str, str], query: list[tuple[str, str]],
              headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The validated input of `op`, keyed by member name. `headers` keys are lower-case."""
        plan = self._inputs[op.name]
        params: dict[str, Any] = {}
        if plan.body is not None and body.strip():
            document = jsonbody.loads(body)
            if not isinstance(document, dict):
                raise type_mismatch(op.input_shape, document)
            if plan.payload is not None:
                params[plan.payload[0]] = from_json(plan.payload[1], document)
            else:
                for key, item in document.items():
                    entry = plan.body.get(key)
                    if entry is not None and item is not None:
                        params[entry[0]] = from_json(entry[1], item)
        elif plan.payload is not None and plan.payload[1].type_name == "blob":
            params[plan.payload[0]] = body
        for name, shape in plan.uri:
            raw = path_params.get(name)
            if raw is not None:
                params[name] = text_value(shape, raw, name)
        if plan.query:
            for key, raw in query:
                entry = plan.query.get(key)
                if entry is None:
                    continue
                name, shape = entry
                if shape.type_name == "list":
                    params.setdefault(name, []).append(text_value(shape.member, raw, name))
                elif name not in params:
                    params[name] = text_value(shape, raw, name)
        for header, name, shape in plan.headers:
            raw = headers.get(header)
            if raw is not None:
                params[name] = text_value(shape, raw, name)
        failures: list[str] = []
        plan.check(params, "", failures)
        if failures:
            raise errors.ValidationException(validation_message(failures))
        for rule in plan.rules:
            rule(params)
        return params

    def serialize(self, op: OperationModel, output: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        plan = self._outputs[op.name]
        status = plan.default_status
        if plan.status is not None and output.get(plan.status) is not None:
            status = int(output[plan.status])
        headers: list[tuple[str, str]] = []
        for name, header in plan.headers:
            value = output.get(name)
            if value is not None:
                headers.append((header, header_text(value)))
        body = b""
        if plan.payload is not None:
            name, shape = plan.payload
            value = output.get(name)
            if value is not None:
                if shape.type_name == "blob":
                    body = value if isinstance(value, bytes) else str(value).encode()
                else:
                    body = _dumps(to_json(shape, value))
        elif plan.body:
            document = {key: to_json(shape, output[name]) for name, key, shape in plan.body
                        if output.get(name) is not None}
            body = _dumps(document)
        if plan.json_content_type:
            headers.append(("Content-Type", "application/json"))
        elif plan.payload is not None:
            headers.append(("Content-Type", "application/octet-stream"))
        return status, headers, body

    def render_error(self, err: errors.ApiError) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [("x-amzn-ErrorType", err.code), ("Content-Type", "application/json")]
        headers.extend(err.headers.items())
        document = {"Type": err.fault, "message": err.message, **err.extra}
        return err.status, headers, _dumps(document)


def _dumps(document: Any) -> bytes:
    # "replace": a lone surrogate that slipped into an output (an echoed value) becomes "?", not a 500
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def _query_pairs(query: str | list[tuple[str, str]]) -> list[tuple[str, str]]:
    return split_query(query) if isinstance(query, str) else list(query)
