"""The model-driven edge: routing, parsing and validation with AWS's wording, serialisation.

Requests are the ones real boto3 clients send (captured before they leave); responses are
read back by botocore's own rest-json parser and by boto3 clients, so what passes here is
what boto3 would accept from AWS. Expected messages are AWS's as recorded.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.parsers import create_parser

from lamina import errors
from lamina.api.model import LambdaModel, field_name, json_error_detail

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:my-fn"
ZIP = b"PK\x05\x06" + bytes(18)


@pytest.fixture(scope="module")
def model() -> LambdaModel:
    return LambdaModel()


class _Raw(io.BytesIO):
    """A response body as botocore reads it from urllib3 (`stream()` for parsing, `read()` for blobs)."""

    def stream(self, **_: Any) -> Any:
        yield self.getvalue()


def _client(validate: bool = False) -> Any:
    return boto3.client("lambda", endpoint_url="http://127.0.0.1:3001", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 1}, parameter_validation=validate))


def call(model: LambdaModel, operation: str, handler: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
         **params: Any) -> Any:
    """Run `operation` through a real boto3 client whose transport is the model: the request boto3
    serialises is routed and parsed by the model, `handler` answers, the model serialises the answer
    (or renders the ApiError) and boto3 parses it."""
    client = _client()

    def transport(request: Any, **_: Any) -> AWSResponse:
        parts = urlsplit(request.url)
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        try:
            matched = model.match(request.method, parts.path)
            assert matched is not None, (request.method, parts.path)
            op, path_params = matched
            parsed = model.parse(op, path_params, parse_qsl(parts.query, keep_blank_values=True), headers, body)
            output = handler(op.name, parsed) if handler else {}
            status, out_headers, out_body = model.serialize(op, output)
        except errors.ApiError as err:
            status, out_headers, out_body = model.render_error(err)
        return AWSResponse(request.url, status, dict(out_headers), _Raw(out_body))

    client.meta.events.register("before-send.lambda.*", transport)
    return getattr(client, field_name_to_method(operation))(**params), client


def field_name_to_method(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def parsed_input(model: LambdaModel, operation: str, **params: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def handler(name: str, parsed: dict[str, Any]) -> dict[str, Any]:
        seen.update(name=name, params=parsed)
        return {"StatusCode": 200} if name == "Invoke" else {}
    call(model, operation, handler, **params)
    assert seen["name"] == operation
    return dict(seen["params"])


def refusal(model: LambdaModel, operation: str, **params: Any) -> errors.ApiError:
    """The ApiError the model raises for boto3's serialisation of `params` (client validation off)."""
    captured: list[errors.ApiError] = []
    client = _client()

    def transport(request: Any, **_: Any) -> AWSResponse:
        parts = urlsplit(request.url)
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        matched = model.match(request.method, parts.path)
        assert matched is not None
        try:
            model.parse(matched[0], matched[1], parse_qsl(parts.query, keep_blank_values=True), headers, body)
        except errors.ApiError as err:
            captured.append(err)
            status, out_headers, out_body = model.render_error(err)
            return AWSResponse(request.url, status, dict(out_headers), _Raw(out_body))
        raise AssertionError(f"{operation} was accepted")

    client.meta.events.register("before-send.lambda.*", transport)
    with pytest.raises(client.exceptions.ClientError) as caught:
        getattr(client, field_name_to_method(operation))(**params)
    err = captured[0]
    # boto3 reads what render_error wrote: same code, same message, same status
    assert caught.value.response["Error"]["Code"] == err.code
    assert caught.value.response["Error"]["Message"] == err.message
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == err.status
    return err


CREATE = {"FunctionName": "my-fn", "Runtime": "python3.11", "Role": ROLE, "Handler": "app.handler",
          "Code": {"ZipFile": ZIP}}


# -- routing -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "operation", "params"), [
    ("POST", "/2015-03-31/functions/my-fn/invocations", "Invoke", {"FunctionName": "my-fn"}),
    ("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Amy-fn%3A1/invocations",
     "Invoke", {"FunctionName": ARN + ":1"}),
    ("GET", "/2015-03-31/functions/", "ListFunctions", {}),
    ("GET", "/2015-03-31/functions", "ListFunctions", {}),
    ("POST", "/2015-03-31/functions", "CreateFunction", {}),
    ("GET", "/2015-03-31/functions/my-fn", "GetFunction", {"FunctionName": "my-fn"}),
    ("PUT", "/2015-03-31/functions/my-fn/configuration", "UpdateFunctionConfiguration", {"FunctionName": "my-fn"}),
    ("GET", "/2018-10-31/layers", "ListLayers", {}),
    ("GET", "/2018-10-31/layers?find=LayerVersion&Arn=x", "GetLayerVersionByArn", {}),
    ("GET", "/2019-09-30/functions/f/provisioned-concurrency?List=ALL", "ListProvisionedConcurrencyConfigs",
     {"FunctionName": "f"}),
    ("GET", "/2019-09-30/functions/f/provisioned-concurrency?Qualifier=1", "GetProvisionedConcurrencyConfig",
     {"FunctionName": "f"}),
])
def test_match(model: LambdaModel, method: str, path: str, operation: str, params: dict[str, str]) -> None:
    matched = model.match(method, path)
    assert matched is not None
    assert (matched[0].name, matched[1]) == (operation, params)


def test_match_with_separate_query(model: LambdaModel) -> None:
    matched = model.match("GET", "/2018-10-31/layers", "find=LayerVersion&Arn=x")
    assert matched is not None and matched[0].name == "GetLayerVersionByArn"


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("PATCH", "/2015-03-31/functions"),
                                              ("POST", "/2015-03-31/functions/a/b/invocations")])
def test_no_match(model: LambdaModel, method: str, path: str) -> None:
    assert model.match(method, path) is None


# -- parsing what boto3 sends -----------------------------------------------------------------------

def test_create_function_round_trip(model: LambdaModel) -> None:
    params = {**CREATE, "Timeout": 30, "MemorySize": 256, "Publish": True, "Architectures": ["arm64"],
              "Environment": {"Variables": {"A_1": "x", "UNICODE": "h\u00e9"}}, "Tags": {"t": "v"},
              "EphemeralStorage": {"Size": 1024}, "Layers": []}
    assert parsed_input(model, "CreateFunction", **params) == params


def test_invoke_round_trip(model: LambdaModel) -> None:
    payload = bytes(range(256))
    got = parsed_input(model, "Invoke", FunctionName=ARN, Qualifier="$LATEST", Payload=payload,
                       InvocationType="Event", LogType="Tail", ClientContext="eyJhIjoxfQ==")
    assert got == {"FunctionName": ARN, "Qualifier": "$LATEST", "Payload": payload, "InvocationType": "Event",
                   "LogType": "Tail", "ClientContext": "eyJhIjoxfQ=="}


def test_invoke_payload_is_not_parsed(model: LambdaModel) -> None:
    """Invoke's payload is a raw blob: the handler decides about JSON, the model does not."""
    assert parsed_input(model, "Invoke", FunctionName="f", Payload=b"not json")["Payload"] == b"not json"


def test_list_functions_query_types(model: LambdaModel) -> None:
    got = parsed_input(model, "ListFunctions", MaxItems=10, Marker="a+b/c=", FunctionVersion="ALL")
    assert got == {"MaxItems": 10, "Marker": "a+b/c=", "FunctionVersion": "ALL"}


def test_update_function_configuration_round_trip(model: LambdaModel) -> None:
    params = {"FunctionName": "my-fn:prod", "Timeout": 900, "Environment": {"Variables": {}},
              "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": []}, "RevisionId": "r"}
    assert parsed_input(model, "UpdateFunctionConfiguration", **params) == params


def test_list_query_member(model: LambdaModel) -> None:
    got = parsed_input(model, "UntagResource", Resource=ARN, TagKeys=["a", "b c"])
    assert got == {"Resource": ARN, "TagKeys": ["a", "b c"]}


# -- validation, with AWS's recorded messages --------------------------------------------------------

def _one(path: str, shown: str, constraint: str) -> str:
    return f"1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def test_role_pattern(model: LambdaModel) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "Role": "r1"})
    assert type(err) is errors.ValidationException
    assert err.message == _one("role", "'r1'", "Member must satisfy regular expression pattern: "
                               r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")


def test_architectures_enum_in_list(model: LambdaModel) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "Architectures": ["X86_64"]})
    assert err.message == _one("architectures", "'[X86_64]'", "Member must satisfy constraint: [Member must "
                               "satisfy enum value set: [x86_64, arm64], Member must not be null]")


def test_architectures_list_length(model: LambdaModel) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "Architectures": ["x86_64", "arm64"]})
    assert err.message == _one("architectures", "'[x86_64, arm64]'",
                               "Member must have length less than or equal to 1")


def test_plain_name_over_64_is_invalid_parameter_value(model: LambdaModel) -> None:
    name = "a" * 65
    err = refusal(model, "CreateFunction", **{**CREATE, "FunctionName": name})
    assert type(err) is errors.InvalidParameterValueException
    assert err.message == _one("functionName", f"'{name}'", "Member must have length less than or equal to 64")


def test_arn_over_140(model: LambdaModel) -> None:
    prefix = "arn:aws:lambda:us-east-1:000000000000:function:"
    arn = prefix + "a" * (141 - len(prefix))
    err = refusal(model, "CreateFunction", **{**CREATE, "FunctionName": arn})
    assert type(err) is errors.ValidationException
    assert err.message == _one("functionName", f"'{arn}'", "Member must have length less than or equal to 140")


@pytest.mark.parametrize("name", ["invalid:function:name", "my-function!", "dots.not.ok"])
def test_function_name_pattern_on_create(model: LambdaModel, name: str) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "FunctionName": name})
    pattern_start = "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
    assert err.message.startswith(_one("functionName", f"'{name}'", pattern_start))
    assert err.message.endswith(r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?")


def test_function_name_pattern_on_get_allows_dots(model: LambdaModel) -> None:
    assert parsed_input(model, "GetFunction", FunctionName="dots.ok")["FunctionName"] == "dots.ok"
    err = refusal(model, "GetFunction", FunctionName="my-function!")
    assert err.message.endswith(r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?")


@pytest.mark.parametrize("runtime", ["PYTHON3.9", "non-existent-runtime"])
def test_unknown_runtime_on_create(model: LambdaModel, runtime: str) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "Runtime": runtime})
    assert type(err) is errors.InvalidParameterValueException
    # the recorded AWS message, as far as it was recorded
    assert err.message.startswith(
        f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
        "[nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, "
        "python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.")
    assert err.message.endswith("] or be a valid ARN")
    listed = err.message.split("set: [", 1)[1].rsplit("]", 1)[0].split(", ")
    assert "python3.7" not in listed and "python3.9" in listed


def test_unknown_runtime_on_update(model: LambdaModel) -> None:
    err = refusal(model, "UpdateFunctionConfiguration", FunctionName="f", Runtime="cobol")
    assert type(err) is errors.InvalidParameterValueException
    assert err.message.startswith("Value cobol at 'runtime' failed to satisfy constraint")


def test_deprecated_runtime_passes_the_model(model: LambdaModel) -> None:
    """python3.7 is in the model's enum; refusing it is the control plane's business."""
    assert parsed_input(model, "CreateFunction", **{**CREATE, "Runtime": "python3.7"})["Runtime"] == "python3.7"


@pytest.mark.parametrize(("setting", "message"), [
    ({"MemorySize": 127}, _one("memorySize", "'127'", "Member must have value greater than or equal to 128")),
    ({"Timeout": 0}, _one("timeout", "'0'", "Member must have value greater than or equal to 1")),
    ({"Timeout": 901}, _one("timeout", "'901'", "Member must have value less than or equal to 900")),
    ({"EphemeralStorage": {"Size": 511}},
     _one("ephemeralStorage.size", "'511'", "Member must have value greater than or equal to 512")),
    ({"EphemeralStorage": {"Size": 10241}},
     _one("ephemeralStorage.size", "'10241'", "Member must have value less than or equal to 10240")),
    ({"SnapStart": {"ApplyOn": "invalidOption"}},
     _one("snapStart.applyOn", "'invalidOption'", "Member must satisfy enum value set: [PublishedVersions, None]")),
    ({"Environment": {"Variables": {"a": "1"}}},
     "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must "
     "satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"),
])
def test_ranges_and_nested_fields(model: LambdaModel, setting: dict[str, Any], message: str) -> None:
    assert refusal(model, "CreateFunction", **{**CREATE, **setting}).message == message
    assert refusal(model, "UpdateFunctionConfiguration", FunctionName="f", **setting).message == message


def test_several_errors(model: LambdaModel) -> None:
    err = refusal(model, "CreateFunction", **{**CREATE, "Role": "r1", "Timeout": 0})
    assert err.message == (
        "2 validation errors detected: "
        r"Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+; "
        "Value '0' at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to 1")


def test_required_members(model: LambdaModel) -> None:
    err = refusal(model, "CreateFunction", FunctionName="f", Code={"ZipFile": ZIP})
    assert err.message == ("1 validation error detected: Value null at 'role' failed to satisfy constraint: "
                           "Member must not be null")


def test_list_functions_function_version(model: LambdaModel) -> None:
    assert refusal(model, "ListFunctions", FunctionVersion="invalid").message == _one(
        "functionVersion", "'invalid'", "Member must satisfy enum value set: [ALL]")


def test_list_functions_max_items(model: LambdaModel) -> None:
    assert refusal(model, "ListFunctions", MaxItems=0).message == _one(
        "maxItems", "'0'", "Member must have value greater than or equal to 1")


def test_url_config_qualifier_and_invoke_mode(model: LambdaModel) -> None:
    assert refusal(model, "CreateFunctionUrlConfig", FunctionName="f", AuthType="NONE",
                   Qualifier="$LATEST").message == _one(
        "qualifier", "'$LATEST'", r"Member must satisfy regular expression pattern: ((?!^\d+$)^[0-9a-zA-Z-_]+$)")
    assert refusal(model, "CreateFunctionUrlConfig", FunctionName="f", AuthType="NONE",
                   InvokeMode="UNKNOWN").message == _one(
        "invokeMode", "'UNKNOWN'", "Member must satisfy enum value set: [RESPONSE_STREAM, BUFFERED]")


def test_recorded_messages_of_other_operations(model: LambdaModel) -> None:
    assert refusal(model, "CreateAlias", FunctionName="f", Name="2024", FunctionVersion="1").message == _one(
        "name", "'2024'", "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
    assert refusal(model, "PutFunctionRecursionConfig", FunctionName="f",
                   RecursiveLoop="InvalidValue").message == _one(
        "recursiveLoop", "'InvalidValue'", "Member must satisfy enum value set: [Terminate, Allow]")
    assert refusal(model, "PutProvisionedConcurrencyConfig", FunctionName="f", Qualifier="1",
                   ProvisionedConcurrentExecutions=0).message == _one(
        "provisionedConcurrentExecutions", "'0'", "Member must have value greater than or equal to 1")
    assert refusal(model, "AddPermission", FunctionName="f", StatementId="example.com", Action="lambda:InvokeFunction",
                   Principal="s3.amazonaws.com").message == _one(
        "statementId", "'example.com'", "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
    assert refusal(model, "ListLayers", CompatibleArchitecture="archdoesnotexist").message == _one(
        "compatibleArchitecture", "'archdoesnotexist'", "Member must satisfy enum value set: [x86_64, arm64]")
    assert refusal(model, "UntagResource", Resource=ARN, TagKeys=[]).message == _one(
        "tagKeys", "null", "Member must not be null")


@pytest.mark.parametrize(("weights", "shown", "constraint"), [
    ({"2": 2.0}, "{2=2.0}", "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                            "Member must have value greater than or equal to 0.0, Member must not be null]"),
    ({"2": -1.0}, "{2=-1.0}", "Map value must satisfy constraint: [Member must have value less than or equal to "
                              "1.0, Member must have value greater than or equal to 0.0, Member must not be null]"),
    ({"$LATEST": 0.5}, "{$LATEST=0.5}", "Map keys must satisfy constraint: [Member must have length less than or "
                                        "equal to 1024, Member must have length greater than or equal to 1, "),
])
def test_map_constraints(model: LambdaModel, weights: dict[str, float], shown: str, constraint: str) -> None:
    err = refusal(model, "CreateAlias", FunctionName="f", Name="live", FunctionVersion="1",
                  RoutingConfig={"AdditionalVersionWeights": weights})
    assert err.message.startswith(_one("routingConfig.additionalVersionWeights", f"'{shown}'", constraint))


def test_not_json_body(model: LambdaModel) -> None:
    op = model.operation("CreateFunction")
    with pytest.raises(errors.InvalidRequestContentException) as caught:
        model.parse(op, {}, [], {}, b"not json")
    assert caught.value.message.startswith(
        "Could not parse request body into json: Could not parse payload into json: Unrecognized token 'not'")
    assert caught.value.status == 400


def test_wrong_json_type(model: LambdaModel) -> None:
    op = model.operation("UpdateFunctionConfiguration")
    with pytest.raises(errors.InvalidRequestContentException) as caught:
        model.parse(op, {"FunctionName": "f"}, [], {}, b'{"Timeout": "abc"}')
    assert caught.value.message.startswith("Could not parse request body into json: ")
    # Numbers in strings are coerced, as AWS's JSON reader does.
    assert model.parse(op, {"FunctionName": "f"}, [], {}, b'{"Timeout": "30"}') == {"FunctionName": "f",
                                                                                    "Timeout": 30}


def test_json_error_detail_matches_recorded_shapes() -> None:
    assert json_error_detail(b"\x87abc").startswith("Invalid UTF-8 start byte 0x87")
    assert json_error_detail('"\u0099'.encode()[1:] + b"x").startswith("Unexpected character ((CTRL-CHAR, code 153))")
    assert json_error_detail(b'{"a": ').startswith("Unexpected end-of-input")


def test_field_name() -> None:
    assert field_name("VpcConfig.SubnetIds") == "vpcConfig.subnetIds"
    assert field_name("FunctionName") == "functionName"


# -- serialisation, read back by botocore and boto3 --------------------------------------------------

def _botocore_reads(model: LambdaModel, operation: str, output: dict[str, Any]) -> dict[str, Any]:
    op = model.operation(operation)
    status, headers, body = model.serialize(op, output)
    parsed: dict[str, Any] = create_parser("rest-json").parse(
        {"status_code": status, "headers": dict(headers), "body": body}, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def test_invoke_output(model: LambdaModel) -> None:
    output = {"StatusCode": 200, "FunctionError": "Unhandled", "LogResult": base64.b64encode(b"log").decode(),
              "ExecutedVersion": "$LATEST", "Payload": b'{"errorMessage":"x"}'}
    read = _botocore_reads(model, "Invoke", output)
    assert read.pop("Payload").encode() == output["Payload"]  # botocore's parser hands the blob over as text
    assert read == {k: v for k, v in output.items() if k != "Payload"}
    status, headers, body = model.serialize(model.operation("Invoke"), output)
    assert status == 200 and body == b'{"errorMessage":"x"}'
    assert ("X-Amz-Function-Error", "Unhandled") in headers


def test_invoke_event_is_202_with_empty_body(model: LambdaModel) -> None:
    status, _, body = model.serialize(model.operation("Invoke"), {"StatusCode": 202})
    assert (status, body) == (202, b"")


def test_function_configuration_output(model: LambdaModel) -> None:
    output = {"FunctionName": "f", "FunctionArn": ARN, "Runtime": "python3.11", "Timeout": 3, "MemorySize": 128,
              "State": "Pending", "StateReason": None, "Architectures": ["x86_64"],
              "Environment": {"Variables": {"A": "1"}}, "TracingConfig": {"Mode": "PassThrough"},
              "NotAMember": "dropped"}
    op = model.operation("CreateFunction")
    status, _, body = model.serialize(op, output)
    assert status == 201
    document = json.loads(body)
    assert "StateReason" not in document and "NotAMember" not in document
    assert b" " not in body.replace(b"Pending", b"")  # compact separators
    expected = {k: v for k, v in output.items() if v is not None and k != "NotAMember"}
    assert _botocore_reads(model, "CreateFunction", output) == expected


def test_list_functions_output_through_boto3(model: LambdaModel) -> None:
    def handler(name: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"Functions": [{"FunctionName": "a", "Layers": [{"Arn": "arn:x", "CodeSize": 3}]}], "NextMarker": None}
    response, _ = call(model, "ListFunctions", handler)
    assert response["Functions"] == [{"FunctionName": "a", "Layers": [{"Arn": "arn:x", "CodeSize": 3}]}]
    assert "NextMarker" not in response


def test_invoke_through_boto3(model: LambdaModel) -> None:
    def handler(name: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": params["Payload"][::-1]}
    response, _ = call(model, "Invoke", handler, FunctionName="f", Payload=b"[1,2]")
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["Payload"].read() == b"]2,1["


@pytest.mark.parametrize("error", [
    errors.ResourceNotFoundException("Function not found: " + ARN),
    errors.InvalidParameterValueException("Cannot reference more than 5 layers."),
    errors.ServiceException("Internal error"),
    errors.TooManyRequestsException("Rate Exceeded.",
                                    extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                                    headers={"Retry-After": "1"}),
], ids=lambda e: type(e).__name__)
def test_errors_through_boto3(model: LambdaModel, error: errors.ApiError) -> None:
    def handler(name: str, params: dict[str, Any]) -> dict[str, Any]:
        raise error
    client = _client()
    with pytest.raises(getattr(client.exceptions, error.code)) as caught:
        call(model, "GetFunction", handler, FunctionName="f")
    response = caught.value.response
    assert response["Error"]["Code"] == error.code
    assert response["Error"]["Message"] == error.message
    assert response["ResponseMetadata"]["HTTPStatusCode"] == error.status
    assert response.get("Type") == error.fault
    for key, value in error.extra.items():
        assert response[key] == value
    status, headers, body = model.render_error(error)
    assert status == error.status
    assert json.loads(body) == {"Type": error.fault, "message": error.message, **error.extra}
    assert ("x-amzn-ErrorType", error.code) in headers
    for item in error.headers.items():
        assert item in headers
