"""Helpers and fixtures for the control-plane integration tests.

Every assertion about an error goes through `assert_aws_error`, which checks the three
things a client sees: the HTTP status, the error code boto3 maps to an exception class,
and the message. Expected values come from AWS's documented and recorded behaviour.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION, ROLE, LaminaServer, make_zip

ACCOUNT = "000000000000"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
FAST_WAIT = {"Delay": 0.1, "MaxAttempts": 300}

ECHO_SOURCE = "def handler(event, context):\n    return event\n"
ECHO: dict[str, str | bytes] = {"app.py": ECHO_SOURCE}

__all__ = [
    "ACCOUNT", "ECHO", "ECHO_SOURCE", "FAST_WAIT", "LAST_MODIFIED_RE", "REGION", "ROLE", "UUID_RE",
    "LaminaServer", "assert_aws_error", "code_sha256", "function_arn", "invoke_json",
    "invoke_raw", "make_zip", "raw_zip", "request_id", "tail", "versioned_handler",
]


def function_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def code_sha256(zip_bytes: bytes) -> str:
    """`CodeSha256` as AWS reports it: base64 of the SHA-256 digest of the zip."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def versioned_handler(version: str) -> dict[str, str | bytes]:
    """A package whose handler reports `version` plus what it sees of its configuration."""
    return {"app.py": (
        "import os\n"
        "def handler(event, context):\n"
        f"    return {{'version': {version!r},\n"
        "            'env': {k: os.environ.get(k) for k in (event or {}).get('env', [])},\n"
        "            'memory': int(context.memory_limit_in_mb),\n"
        "            'remaining_ms': context.get_remaining_time_in_millis(),\n"
        "            'function_name': context.function_name}\n"
    )}


def raw_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip from (name, content, full st_mode) triples: lets a test write symlinks and odd paths."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix, so external_attr carries st_mode
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def assert_aws_error(exc: BaseException, status: int, code: str, message: str | None = None, *,
                     prefix: str | None = None) -> str:
    """Check a botocore ClientError the way a client sees it; returns the message."""
    assert isinstance(exc, ClientError), f"expected a ClientError, got {exc!r}"
    response: dict[str, Any] = exc.response
    got_status = response["ResponseMetadata"]["HTTPStatusCode"]
    got_code = response["Error"]["Code"]
    got_message = response["Error"].get("Message", "")
    assert (got_status, got_code) == (status, code), f"{got_status} {got_code}: {got_message}"
    if message is not None:
        assert got_message == message
    if prefix is not None:
        assert got_message.startswith(prefix), got_message
    return str(got_message)


def invoke_raw(client: Any, name: str, payload: bytes | str = b"{}", **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    """Invoke and read the raw payload bytes: (response, payload)."""
    response = client.invoke(FunctionName=name, Payload=payload, **kwargs)
    return response, response["Payload"].read()


def tail(response: dict[str, Any]) -> str:
    """The decoded `LogType=Tail` log of an invoke response."""
    return base64.b64decode(response["LogResult"]).decode("utf-8", errors="replace")


def request_id(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def invoke_json(client: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """Invoke and decode the JSON payload; returns (response without the stream, decoded payload)."""
    body = json.dumps({} if payload is None else payload).encode()
    response = client.invoke(FunctionName=name, Payload=body, **kwargs)
    raw = response.pop("Payload").read()
    return response, (json.loads(raw) if raw else None)


@pytest.fixture(scope="session")
def unvalidated_client(server: LaminaServer) -> Any:
    """A boto3 client that sends what it is given: botocore's own checks would hide the server's."""
    return server.client(parameter_validation=False)


@pytest.fixture
def cleanup_functions(lambda_client: Any) -> Iterator[list[str]]:
    """Names appended here are deleted after the test (if they still exist)."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(ClientError):
            lambda_client.delete_function(FunctionName=name)


@pytest.fixture
def wait_active(lambda_client: Any) -> Callable[[str], None]:
    def wait(name: str) -> None:
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return wait


@pytest.fixture
def wait_updated(lambda_client: Any) -> Callable[[str], None]:
    def wait(name: str) -> None:
        lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return wait


@pytest.fixture(scope="session")
def forking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """A server whose Python environments all fork from their function's zygote, even the
    first (the default forks only when a function scales out)."""
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-forking") / "data", env={"LAMINA_FORK_STARTS": "always"})
    srv.start()
    yield srv
    srv.stop()
