"""SigV4 authentication as AWS Lambda enforces it, with raw signed HTTP requests.

Requests are signed with botocore's own signer and sent with http.client, so each test
controls exactly what reaches the server. Expected codes and messages are AWS's.
"""

from __future__ import annotations

import datetime
import http.client
import json
import re
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import ACCOUNT, ECHO, ROLE, LaminaServer, assert_aws_error, make_zip

LIST_PATH = "/2015-03-31/functions/"
STAMP = r"\d{8}T\d{6}Z"


def send(method: str, url: str, body: bytes | None,
         headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def signed(server: LaminaServer, method: str = "GET", path: str = LIST_PATH, body: bytes = b"", *,
           access_key: str = "test", secret: str = "test", region: str = "us-east-1",
           headers: dict[str, str] | None = None) -> tuple[str, str, bytes, dict[str, str]]:
    request = AWSRequest(method=method, url=server.url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(access_key, secret), "lambda", region).add_auth(request)
    prepared = request.prepare()
    return prepared.method, prepared.url, body, dict(prepared.headers.items())


def error_of(status: int, headers: dict[str, str], body: bytes) -> tuple[int, str, str]:
    """(status, error code from x-amzn-ErrorType, message) as botocore would read them."""
    code = headers.get("x-amzn-errortype", "").split(":")[0]
    document = json.loads(body) if body else {}
    message = document.get("message", document.get("Message", ""))
    return status, code, message


def test_valid_signature_is_accepted(server: LaminaServer) -> None:
    status, _, body = send(*signed(server))
    assert status == 200, body
    assert "Functions" in json.loads(body)


def test_unknown_access_key(server: LaminaServer) -> None:
    status, code, message = error_of(*send(*signed(server, access_key="AKIDNOTKNOWN", secret="whatever")))
    assert (status, code) == (403, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


def test_wrong_secret(server: LaminaServer) -> None:
    status, code, message = error_of(*send(*signed(server, secret="not-the-secret")))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith(
        "The request signature we calculated does not match the signature you provided."), message


def test_missing_authorization(server: LaminaServer) -> None:
    status, code, message = error_of(*send("GET", server.url + LIST_PATH, None, {}))
    assert (status, code) == (403, "MissingAuthenticationTokenException")
    assert message == "Missing Authentication Token"


def test_body_changed_after_signing(server: LaminaServer) -> None:
    """The signature covers the payload: a different body with the same headers is refused."""
    name = f"tampered-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"FunctionName": name, "Runtime": "python3.11", "Handler": "app.handler",
                       "Role": ROLE, "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}).encode()
    method, url, _, headers = signed(server, "POST", "/2015-03-31/functions", body,
                                     headers={"Content-Type": "application/json"})
    tampered = body.replace(b"python3.11", b"python3.12")
    headers["Content-Length"] = str(len(tampered))
    status, code, _ = error_of(*send(method, url, tampered, headers))
    assert (status, code) == (403, "InvalidSignatureException")


@pytest.mark.parametrize(("shift", "pattern"), [
    (-600, rf"^Signature expired: ({STAMP}) is now earlier than {STAMP} \({STAMP} - 5 min\.\)$"),
    (600, rf"^Signature not yet current: ({STAMP}) is still later than {STAMP} \({STAMP} \+ 5 min\.\)$"),
], ids=["ten-minutes-ago", "ten-minutes-ahead"])
def test_clock_skew_over_five_minutes(server: LaminaServer, monkeypatch: pytest.MonkeyPatch,
                                      shift: int, pattern: str) -> None:
    when = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(seconds=shift)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: when)
    request = signed(server)
    assert request[3]["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    status, code, message = error_of(*send(*request))
    assert (status, code) == (403, "InvalidSignatureException")
    match = re.match(pattern, message)
    assert match, message
    assert match.group(1) == when.strftime("%Y%m%dT%H%M%SZ")


def test_small_clock_skew_is_tolerated(server: LaminaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    when = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=120)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: when)
    status, _, body = send(*signed(server))
    assert status == 200, body


def _client(server: LaminaServer, key: str, secret: str, region: str = "us-east-1") -> Any:
    return boto3.client("lambda", endpoint_url=server.url, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


def test_boto3_with_wrong_secret(server: LaminaServer) -> None:
    client = _client(server, "test", "wrong")
    with pytest.raises(ClientError) as e:
        client.list_functions()
    assert_aws_error(e.value, 403, "InvalidSignatureException")


def test_boto3_with_unknown_key(server: LaminaServer) -> None:
    client = _client(server, "nobody", "test")
    with pytest.raises(ClientError) as e:
        client.get_account_settings()
    assert_aws_error(e.value, 403, "UnrecognizedClientException",
                     "The security token included in the request is invalid.")


def test_health_needs_no_auth(server: LaminaServer) -> None:
    with urllib.request.urlopen(server.url + "/_lamina/health", timeout=10) as r:
        assert r.status == 200


def test_region_comes_from_the_credential_scope(server: LaminaServer) -> None:
    europe = _client(server, "test", "test", region="eu-west-1")
    name = f"scoped-{uuid.uuid4().hex[:8]}"
    created = europe.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                                     Role=ROLE, Code={"ZipFile": make_zip(ECHO)})
    try:
        assert created["FunctionArn"] == f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{name}"
        america = _client(server, "test", "test", region="us-east-1")
        with pytest.raises(america.exceptions.ResourceNotFoundException):
            america.get_function(FunctionName=name)
        assert name not in {f["FunctionName"] for f in america.get_paginator("list_functions")
                            .paginate().build_full_result()["Functions"]}
    finally:
        europe.delete_function(FunctionName=name)
