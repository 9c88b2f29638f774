"""SigV4 verification against requests signed by botocore's own signer.

Requests come from real boto3 clients (captured just before they would go on the wire) or
from botocore's SigV4Auth/SigV4QueryAuth; the verifier must accept them unchanged and refuse
any change with AWS's error code and message.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.config import Config
from botocore.credentials import Credentials

from lamina import errors
from lamina.api.sigv4 import Caller, SigV4Verifier

ENDPOINT = "http://127.0.0.1:3001"
KEYS = {"test": "test", "AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
STAMP = "%Y%m%dT%H%M%SZ"

Wire = tuple[str, str, str, dict[str, str], bytes]


class _Captured(Exception):
    def __init__(self, wire: Wire) -> None:
        super().__init__("captured")
        self.wire = wire


def _wire(method: str, url: str, headers: Any, body: Any) -> Wire:
    """What the server would receive: raw path, raw query, lower-cased headers (Host included), body."""
    parts = urlsplit(url)
    lowered = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in headers.items()}
    lowered.setdefault("host", parts.netloc)
    data = body if isinstance(body, bytes) else (body or "").encode()
    return method, parts.path, parts.query, lowered, data


def boto3_request(operation: str, region: str = "us-east-1", key: str = "test", secret: str = "test",
                  **params: Any) -> Wire:
    """The request a real boto3 client sends for `operation`, captured before it leaves."""
    client = boto3.client("lambda", endpoint_url=ENDPOINT, region_name=region, aws_access_key_id=key,
                          aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))

    def capture(request: Any, **_: Any) -> None:
        raise _Captured(_wire(request.method, request.url, request.headers, request.body))

    client.meta.events.register("before-send.lambda.*", capture)
    with pytest.raises(_Captured) as caught:
        getattr(client, operation)(**params)
    return caught.value.wire


def signed(method: str, path: str, body: bytes = b"", *, headers: dict[str, str] | None = None,
           key: str = "test", secret: str = "test", region: str = "us-east-1") -> Wire:
    request = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), "lambda", region).add_auth(request)
    prepared = request.prepare()
    return _wire(prepared.method, prepared.url, prepared.headers, body)


@pytest.fixture
def verifier() -> SigV4Verifier:
    return SigV4Verifier(KEYS)


def verify(v: SigV4Verifier, wire: Wire, now: float | None = None) -> Caller:
    method, path, query, headers, body = wire
    return v.verify(method, path, query, headers, body, now=now)


def refused(v: SigV4Verifier, wire: Wire, now: float | None = None) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        verify(v, wire, now)
    return caught.value


ARN = "arn:aws:lambda:us-east-1:000000000000:function:my-fn"


@pytest.mark.parametrize(("operation", "params"), [
    ("list_functions", {}),
    ("list_functions", {"Marker": "a+b/c= d&e", "MaxItems": 5, "FunctionVersion": "ALL"}),
    ("get_function", {"FunctionName": "my-fn"}),
    ("get_function", {"FunctionName": ARN + ":prod"}),
    ("get_function", {"FunctionName": "000000000000:function:my-fn:$LATEST"}),
    ("invoke", {"FunctionName": ARN, "Qualifier": "$LATEST", "Payload": b'{"k": "v"}'}),
    ("invoke", {"FunctionName": "my-fn", "Payload": bytes(range(256)), "InvocationType": "Event",
                "LogType": "Tail", "ClientContext": "eyJhIjoxfQ=="}),
    ("invoke", {"FunctionName": "my-fn:alias"}),
    ("create_function", {"FunctionName": "f", "Runtime": "python3.11", "Role": "arn:aws:iam::000000000000:role/r",
                         "Handler": "app.handler", "Code": {"ZipFile": b"PK\x05\x06" + bytes(18)},
                         "Environment": {"Variables": {"UNICODE": "h\u00e9llo \u2603"}}}),
    ("delete_function", {"FunctionName": ARN, "Qualifier": "1"}),
    ("untag_resource", {"Resource": ARN, "TagKeys": ["a", "b c", "d/e"]}),
], ids=["list", "list-query", "get", "get-arn-alias", "get-partial-arn", "invoke-arn", "invoke-binary",
        "invoke-empty", "create", "delete", "untag"])
def test_boto3_requests_are_accepted(verifier: SigV4Verifier, operation: str, params: dict[str, Any]) -> None:
    caller = verify(verifier, boto3_request(operation, **params))
    assert caller == Caller("test", "us-east-1", "lambda")


def test_region_and_key_come_from_the_credential_scope(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions", region="eu-west-1", key="AKIDEXAMPLE",
                         secret=KEYS["AKIDEXAMPLE"])
    assert verify(verifier, wire) == Caller("AKIDEXAMPLE", "eu-west-1", "lambda")


@pytest.mark.parametrize("path", ["/2015-03-31/functions/", "/2015-03-31/functions/a%3Ab/invocations",
                                  "/2015-03-31/functions/with%20space", "/a/./b/../c", "/"])
def test_raw_signer_paths(verifier: SigV4Verifier, path: str) -> None:
    assert verify(verifier, signed("GET", path)).access_key == "test"


def test_binary_body_and_extra_signed_header(verifier: SigV4Verifier) -> None:
    body = bytes(range(256)) * 4
    wire = signed("POST", "/2015-03-31/functions/f/invocations", body,
                  headers={"X-Amz-Invocation-Type": "  Event   now ", "Content-Type": "application/octet-stream"})
    assert verify(verifier, wire).region == "us-east-1"


def test_declared_payload_hash_is_used(verifier: SigV4Verifier) -> None:
    body = b'{"x": 1}'
    wire = signed("POST", "/2015-03-31/functions/f/invocations", body,
                  headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert verify(verifier, wire).access_key == "test"
    method, path, query, headers, _ = wire
    assert refused(verifier, (method, path, query, headers, b'{"x": 2}')).code == "InvalidSignatureException"


class _SignsEveryHeader(SigV4Auth):
    """A signer that, unlike botocore's, also signs User-Agent (as some clients do)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name.lower()] = value
        headers["host"] = urlsplit(request.url).netloc
        return headers


def test_headers_botocore_never_signs_are_verified_when_signed(verifier: SigV4Verifier) -> None:
    """The signature covers the headers the client listed, whichever they are."""
    request = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions/", headers={"User-Agent": "client/1.0"})
    _SignsEveryHeader(Credentials("test", "test"), "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()
    method, path, query, headers, body = _wire(prepared.method, prepared.url, prepared.headers, b"")
    assert "user-agent" in headers["authorization"]
    assert verify(verifier, (method, path, query, headers, body)).access_key == "test"
    headers["user-agent"] = "client/2.0"
    assert refused(verifier, (method, path, query, headers, body)).code == "InvalidSignatureException"


def test_presigned_query_string(verifier: SigV4Verifier) -> None:
    request = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions/my-fn?Qualifier=prod")
    SigV4QueryAuth(Credentials("test", "test"), "lambda", "eu-central-1", expires=60).add_auth(request)
    prepared = request.prepare()
    wire = _wire(prepared.method, prepared.url, prepared.headers, b"")
    assert "X-Amz-Signature=" in wire[2]
    assert verify(verifier, wire) == Caller("test", "eu-central-1", "lambda")
    assert refused(verifier, wire, now=time.time() + 600).code == "InvalidSignatureException"
    tampered = wire[2].replace("Qualifier=prod", "Qualifier=dev")
    assert refused(verifier, (wire[0], wire[1], tampered, wire[3], b"")).message.startswith(
        "The request signature we calculated does not match")


WEEK_MESSAGE = ("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be "
                "less than 604800 seconds")


def _presigned(expires: int) -> Wire:
    request = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions/")
    SigV4QueryAuth(Credentials("test", "test"), "lambda", "us-east-1", expires=expires).add_auth(request)
    prepared = request.prepare()
    return _wire(prepared.method, prepared.url, prepared.headers, b"")


@pytest.mark.parametrize(("expires", "message"), [
    ("604801", WEEK_MESSAGE), ("1000000000", WEEK_MESSAGE), ("9" * 5000, WEEK_MESSAGE),
    ("-1", "X-Amz-Expires must be non-negative"), ("abc", "X-Amz-Expires should be a number"),
    ("", "X-Amz-Expires should be a number"), ("1e3", "X-Amz-Expires should be a number"),
])
def test_presigned_expiry_is_at_most_a_week(verifier: SigV4Verifier, expires: str, message: str) -> None:
    """S3's refusals (the only ones AWS documents for X-Amz-Expires), checked before the signature."""
    method, path, query, headers, body = _presigned(600)
    query = query.replace("X-Amz-Expires=600", f"X-Amz-Expires={expires}")
    err = refused(verifier, (method, path, query, headers, body))
    assert (err.code, err.status, err.message) == ("AuthorizationQueryParametersError", 400, message)


def test_presigned_expiry_is_honoured(verifier: SigV4Verifier) -> None:
    week = _presigned(604800)
    assert verify(verifier, week).access_key == "test"
    assert verify(verifier, week, now=time.time() + 604000).access_key == "test"
    assert refused(verifier, week, now=time.time() + 604900).message.startswith("Signature expired")
    minute = _presigned(60)
    assert refused(verifier, minute, now=time.time() + 90).message.startswith("Signature expired")


# -- refusals ----------------------------------------------------------------------------------------

def _expect(err: errors.ApiError, code: str, message: str | None = None) -> None:
    assert err.code == code, err
    assert err.status == 403
    if message is not None:
        assert err.message == message


BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                 "Secret Access Key and signing method. Consult the service documentation for details.")


def test_missing_authorization(verifier: SigV4Verifier) -> None:
    method, path, query, headers, body = signed("GET", "/2015-03-31/functions/")
    del headers["authorization"]
    _expect(refused(verifier, (method, path, query, headers, body)), "MissingAuthenticationTokenException",
            "Missing Authentication Token")


def test_unknown_access_key(verifier: SigV4Verifier) -> None:
    _expect(refused(verifier, boto3_request("list_functions", key="AKIDNOTKNOWN", secret="x")),
            "UnrecognizedClientException", "The security token included in the request is invalid.")


def test_wrong_secret(verifier: SigV4Verifier) -> None:
    _expect(refused(verifier, boto3_request("list_functions", secret="not-the-secret")),
            "InvalidSignatureException", BAD_SIGNATURE)


@pytest.mark.parametrize("part", ["method", "path", "query", "header", "body"])
def test_any_change_after_signing_is_refused(verifier: SigV4Verifier, part: str) -> None:
    method, path, query, headers, body = boto3_request(
        "invoke", FunctionName=ARN, Qualifier="1", Payload=b'{"a": 1}', InvocationType="RequestResponse")
    if part == "method":
        method = "PUT"
    elif part == "path":
        path = path.replace("my-fn", "my-fo")
    elif part == "query":
        query = "Qualifier=2"
    elif part == "header":
        headers["x-amz-invocation-type"] = "Event"
    else:
        body = b'{"a": 2}'
    _expect(refused(verifier, (method, path, query, headers, body)), "InvalidSignatureException", BAD_SIGNATURE)


def test_decoded_path_does_not_verify(verifier: SigV4Verifier) -> None:
    """The signature covers the path as sent (percent-encoded), not its decoded form."""
    method, path, query, headers, body = boto3_request("get_function", FunctionName=ARN)
    assert "%3A" in path
    _expect(refused(verifier, (method, path.replace("%3A", ":"), query, headers, body)),
            "InvalidSignatureException")


@pytest.mark.parametrize(("shift", "pattern"), [
    (-600, r"Signature expired: (\S+) is now earlier than (\S+) \((\S+) - 5 min\.\)"),
    (600, r"Signature not yet current: (\S+) is still later than (\S+) \((\S+) \+ 5 min\.\)"),
])
def test_clock_skew(verifier: SigV4Verifier, shift: int, pattern: str) -> None:
    wire = boto3_request("list_functions")
    signed_at = datetime.datetime.strptime(wire[3]["x-amz-date"], STAMP).replace(tzinfo=datetime.UTC)
    now = signed_at.timestamp() - shift
    err = refused(verifier, wire, now=now)
    _expect(err, "InvalidSignatureException")
    found = re.fullmatch(pattern, err.message)
    assert found, err.message

    def stamp(t: float) -> str:
        return time.strftime(STAMP, time.gmtime(t))
    limit = now - 300 if shift < 0 else now + 300
    assert found.groups() == (wire[3]["x-amz-date"], stamp(limit), stamp(now))


def test_exact_skew_message(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    wire[3]["x-amz-date"] = "20240101T000000Z"
    now = datetime.datetime(2024, 1, 1, 0, 10, tzinfo=datetime.UTC).timestamp()
    # Date in scope differs from the header first; make them agree to reach the time check.
    wire[3]["authorization"] = re.sub(r"/\d{8}/", "/20240101/", wire[3]["authorization"])
    _expect(refused(verifier, wire, now=now), "InvalidSignatureException",
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z (20240101T001000Z - 5 min.)")


def test_small_skew_is_tolerated(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    signed_at = datetime.datetime.strptime(wire[3]["x-amz-date"], STAMP).replace(tzinfo=datetime.UTC)
    assert verify(verifier, wire, now=signed_at.timestamp() + 299).access_key == "test"
    assert verify(verifier, wire, now=signed_at.timestamp() - 299).access_key == "test"


def _with_authorization(wire: Wire, value: str) -> Wire:
    headers = dict(wire[3], authorization=value)
    return wire[0], wire[1], wire[2], headers, wire[4]


def test_header_without_parameters(verifier: SigV4Verifier) -> None:
    wire = _with_authorization(boto3_request("list_functions"), "Bearer abc")
    _expect(refused(verifier, wire), "IncompleteSignatureException",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
            "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer abc")


def test_header_missing_signature(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    header = wire[3]["authorization"].rsplit(", Signature=", 1)[0]
    err = refused(verifier, _with_authorization(wire, header))
    _expect(err, "IncompleteSignatureException",
            f"Authorization header requires 'Signature' parameter. Authorization={header}")


def test_header_pair_without_equals(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    header = wire[3]["authorization"].replace("Credential=test", "Credential=test oops", 1)
    header = header.replace("Credential=test oops/", "Credential=test, oops/", 1)
    err = refused(verifier, _with_authorization(wire, header))
    _expect(err, "IncompleteSignatureException")
    assert err.message.endswith(f"not a valid key=value pair (missing equal-sign) in Authorization header: "
                                f"'{header}'."), err.message


def test_credential_with_four_elements(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    header = re.sub(r"Credential=test/(\d{8})/us-east-1/", r"Credential=test/\1/", wire[3]["authorization"])
    err = refused(verifier, _with_authorization(wire, header))
    _expect(err, "IncompleteSignatureException")
    assert err.message.startswith("Credential must have exactly 5 slash-delimited elements"), err.message


def test_scope_for_another_service(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    header = wire[3]["authorization"].replace("/lambda/aws4_request", "/s3/aws4_request")
    _expect(refused(verifier, _with_authorization(wire, header)), "InvalidSignatureException",
            "Credential should be scoped to correct service: 'lambda'. ")


def test_scope_date_must_match_request_date(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    stamp = wire[3]["x-amz-date"]
    header = wire[3]["authorization"].replace(f"/{stamp[:8]}/", "/19990101/")
    _expect(refused(verifier, _with_authorization(wire, header)), "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'19990101' != '{stamp[:8]}', from '{stamp}'.")


def test_missing_date(verifier: SigV4Verifier) -> None:
    method, path, query, headers, body = boto3_request("list_functions")
    del headers["x-amz-date"]
    err = refused(verifier, (method, path, query, headers, body))
    _expect(err, "IncompleteSignatureException")
    assert "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header." in err.message


def test_host_must_be_signed(verifier: SigV4Verifier) -> None:
    wire = boto3_request("list_functions")
    header = wire[3]["authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    _expect(refused(verifier, _with_authorization(wire, header)), "InvalidSignatureException")


def test_error_classes_are_aws_codes() -> None:
    for cls in (errors.MissingAuthenticationTokenException, errors.UnrecognizedClientException,
                errors.InvalidSignatureException, errors.IncompleteSignatureException):
        assert cls.__name__ == cls.code
        assert cls.status == 403
