"""Attacks on the HTTP API edge (security issue 12, findings 4 and 5), performed for real.

- Code download URLs (GetFunction's Code.Location, GetLayerVersion's Content.Location)
  expire after their lifetime and die with their owner, as AWS's S3 presigned URLs do;
- `/_lamina/` endpoints other than health need a SigV4 signature, unless the operator lets
  loopback clients read unsigned;
- presigned requests cannot outlive SigV4's week;
- hostile JSON (nested past Jackson's 1,000 levels, numbers past 1,000 digits) gets AWS's
  400, not a 500;
- a connection that stalls mid-request is closed.

The `edge` server shortens the lifetimes (2 s URLs, 1 s header and body deadlines) so that
the waits stay short; it listens on every address so that a non-loopback client exists.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from lamina.cli.status import fetch_status
from tests.conftest import REGION, ROLE, LaminaServer, make_zip

KEYS = (f"edge{secrets.token_hex(4)}", secrets.token_hex(16))
URL_LIFETIME = 2
DEADLINE = 1.0
ECHO = {"app.py": "def handler(event, context):\n    return event\n"}
TOO_DEEP = ("Could not parse request body into json: Could not parse payload into json: Document nesting depth "
            "(1001) exceeds the maximum allowed (1000, from `StreamReadConstraints.getMaxNestingDepth()`)")
TOO_LONG = ("Could not parse request body into json: Could not parse payload into json: Number value length "
            "(5000) exceeds the maximum allowed (1000, from `StreamReadConstraints.getMaxNumberLength()`)")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("edge") / "data", env={
        "LAMINA_HOST": "0.0.0.0", "LAMINA_CREDENTIALS": f"{KEYS[0]}:{KEYS[1]}", "LAMINA_STATUS_UNSIGNED": "loopback",
        "LAMINA_CODE_URL_EXPIRES": str(URL_LIFETIME), "LAMINA_HEADER_TIMEOUT": str(DEADLINE),
        "LAMINA_BODY_TIMEOUT": str(DEADLINE)})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def edge_client(edge: LaminaServer) -> Any:
    return boto3.client("lambda", endpoint_url=edge.url, region_name=REGION, aws_access_key_id=KEYS[0],
                        aws_secret_access_key=KEYS[1], config=Config(retries={"total_max_attempts": 1}))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain GET, as curl would make it: no credentials unless given."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _signed_headers(method: str, url: str, body: bytes = b"",
                    keys: tuple[str, str] = ("test", "test")) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(*keys), "lambda", REGION).add_auth(request)
    return dict(request.headers.items())


def _post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=_signed_headers("POST", url, body))
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _xml_error(body: bytes) -> tuple[str, str]:
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'), text
    return text.split("<Code>")[1].split("</Code>")[0], text.split("<Message>")[1].split("</Message>")[0]


def _create(client: Any, name: str, files: dict[str, str | bytes] = ECHO) -> None:
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip(files)})


# -- finding 4: code URLs --------------------------------------------------------------------------

def test_code_location_expires(edge_client: Any, unique_name: Callable[[str], str]) -> None:
    name = unique_name("")
    _create(edge_client, name)
    location = edge_client.get_function(FunctionName=name)["Code"]["Location"]
    assert "X-Amz-Expires=2" in location
    status, headers, body = _get(location)  # no credentials, as with AWS's S3 URL
    assert status == 200 and headers["content-type"] == "application/zip" and body[:2] == b"PK"
    time.sleep(URL_LIFETIME + 1.1)
    status, headers, body = _get(location)
    assert status == 403
    assert headers["content-type"] == "application/xml"
    assert _xml_error(body) == ("AccessDenied", "Request has expired")
    assert f"<X-Amz-Expires>{URL_LIFETIME}</X-Amz-Expires><Expires>" in body.decode()
    edge_client.delete_function(FunctionName=name)


def test_code_location_dies_with_the_function_and_its_code(edge_client: Any,
                                                           unique_name: Callable[[str], str]) -> None:
    deleted, updated = unique_name("gone"), unique_name("updated")
    _create(edge_client, deleted)
    _create(edge_client, updated)
    gone = edge_client.get_function(FunctionName=deleted)["Code"]["Location"]
    old = edge_client.get_function(FunctionName=updated)["Code"]["Location"]
    assert _get(gone)[0] == 200 and _get(old)[0] == 200
    edge_client.delete_function(FunctionName=deleted)
    edge_client.get_waiter("function_active_v2").wait(FunctionName=updated,
                                                      WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    edge_client.update_function_code(FunctionName=updated, ZipFile=make_zip({"app.py": "def handler(e, c):\n"
                                                                                       "    return 2\n"}))
    for url in (gone, old):
        status, _, body = _get(url)
        assert status == 404
        assert _xml_error(body) == ("NoSuchKey", "The specified key does not exist.")
    fresh = edge_client.get_function(FunctionName=updated)["Code"]["Location"]
    assert _get(fresh)[0] == 200
    tampered = old.replace("%3Aupdated", "%3Agone")  # another owner, same signature: not authentic
    assert _get(tampered)[0] == 403
    edge_client.delete_function(FunctionName=updated)


def test_layer_content_location_dies_with_the_layer_version(edge_client: Any,
                                                            unique_name: Callable[[str], str]) -> None:
    layer = edge_client.publish_layer_version(LayerName=unique_name("layer"),
                                              Content={"ZipFile": make_zip({"python/x.py": "X = 1\n"})})
    location = layer["Content"]["Location"]
    assert _get(location)[0] == 200
    assert edge_client.get_layer_version_by_arn(Arn=layer["LayerVersionArn"])["Content"]["Location"]
    edge_client.delete_layer_version(LayerName=layer["LayerArn"], VersionNumber=layer["Version"])
    status, _, body = _get(location)
    assert status == 404 and _xml_error(body)[0] == "NoSuchKey"


# -- finding 4: /_lamina/ needs a signature ------------------------------------------------------

def test_status_refuses_unsigned_and_wrongly_signed_requests(server: LaminaServer) -> None:
    url = server.url + "/_lamina/status"
    status, headers, body = _get(url)
    assert status == 403
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert json.loads(body) == {"Type": "User", "message": "Missing Authentication Token"}
    status, headers, _ = _get(url, _signed_headers("GET", url, keys=("nobody", "test")))
    assert (status, headers["x-amzn-errortype"]) == (403, "UnrecognizedClientException")
    status, headers, _ = _get(url, _signed_headers("GET", url, keys=("test", "wrong")))
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert "functions" in json.loads(_get(url, _signed_headers("GET", url))[2])
    assert _get(server.url + "/_lamina/anything-else")[0] == 403  # every /_lamina/ path but health
    assert _get(server.url + "/_lamina/health")[0] == 200


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the outgoing address, sends nothing
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_unsigned_status_only_from_loopback_when_allowed(edge: LaminaServer) -> None:
    status, _, body = _get(edge.url + "/_lamina/status")  # LAMINA_STATUS_UNSIGNED=loopback
    assert status == 200 and "functions" in json.loads(body)
    assert fetch_status(edge.url, keys=KEYS)["functions"] is not None  # signed works too
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    status, headers, _ = _get(f"http://{address}:{edge.port}/_lamina/status")
    assert status == 403 and headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    url = f"http://{address}:{edge.port}/_lamina/status"
    assert _get(url, _signed_headers("GET", url, keys=KEYS))[0] == 200


# -- finding 4: presigned requests live at most a week ---------------------------------------------

@pytest.mark.parametrize(("expires", "status"), [(1_000_000_000, 400), (604_801, 400), (604_800, 200)])
def test_presigned_expiry_over_a_week_is_refused(server: LaminaServer, expires: int, status: int) -> None:
    request = AWSRequest(method="GET", url=server.url + "/2015-03-31/functions/")
    SigV4QueryAuth(Credentials("test", "test"), "lambda", REGION, expires=expires).add_auth(request)
    got, headers, body = _get(request.prepare().url)
    assert got == status, body
    if status == 400:
        assert headers["x-amzn-errortype"] == "AuthorizationQueryParametersError"
        assert json.loads(body)["message"] == (
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less "
            "than 604800 seconds")


# -- finding 5: hostile JSON -----------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000, TOO_DEEP), (b'{"a":' * 1001 + b"1" + b"}" * 1001, TOO_DEEP), (b"9" * 5000, TOO_LONG),
], ids=["deep-array", "deep-object", "long-number"])
def test_hostile_json_bodies_get_aws_400(server: LaminaServer, body: bytes, message: str) -> None:
    for path in ("/2015-03-31/functions", "/2015-03-31/functions/f/aliases"):
        status, headers, answer = _post(server.url + path, body)
        assert (status, headers["x-amzn-errortype"]) == (400, "InvalidRequestContentException"), answer
        assert json.loads(answer) == {"Type": "User", "message": message}


def test_deeply_nested_invoke_payloads(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException) as caught:
        lambda_client.invoke(FunctionName=name, Payload=b"[" * 1001 + b"]" * 1001)
    assert caught.value.response["Error"]["Message"] == TOO_DEEP
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName=name, Payload=b"[" * 200_000, InvocationType="Event")
    # 1,000 levels is JSON AWS accepts: it reaches the function (whose own parser may refuse it)
    answer = lambda_client.invoke(FunctionName=name, Payload=b"[" * 1000 + b"]" * 1000)
    assert answer["StatusCode"] == 200
    assert lambda_client.invoke(FunctionName=name, Payload=b'{"still": "serving"}')["Payload"].read() == \
        b'{"still": "serving"}'


# -- finding 5: stalled requests -------------------------------------------------------------------

def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes `sock` (sending `trickle` a byte at a time meanwhile)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        if trickle:
            try:
                sock.sendall(trickle[:1])
            except OSError:
                return time.monotonic() - started
            trickle = trickle[1:] or trickle
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {seconds} s")


@pytest.mark.parametrize("kind", ["silent", "slow-headers", "stalled-body"])
def test_stalled_connections_are_closed(edge: LaminaServer, kind: str) -> None:
    with socket.create_connection(("127.0.0.1", edge.port)) as sock:
        trickle = b""
        if kind == "slow-headers":
            sock.sendall(b"GET /_lamina/health HTTP/1.1\r\n")
            trickle = b"X-Slow: " + b"a" * 100
        elif kind == "stalled-body":
            sock.sendall(b"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":")
        assert _closed_within(sock, DEADLINE + 4, trickle) >= DEADLINE * 0.9
    assert _get(edge.url + "/_lamina/health")[0] == 200


def test_idle_keep_alive_outlives_the_header_deadline(edge: LaminaServer) -> None:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(b"GET /_lamina/health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(4096)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(DEADLINE * 1.5)


def test_the_edge_server_kept_serving(edge: LaminaServer, edge_client: Any) -> None:
    assert edge_client.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200
    log = Path(edge.log_path).read_text()
    assert "Traceback" not in log, log[-3000:]
