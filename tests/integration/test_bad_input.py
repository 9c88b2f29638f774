"""Bad input gets AWS's status, error code and message; hostile packages stay harmless.

Messages are AWS's as recorded (reference list beside the design notes) or as AWS renders
a failed model constraint ("1 validation error detected: Value '…' at '…' failed to
satisfy constraint: …"). botocore's client-side checks are switched off where they would
stop the request before the server sees it.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import (
    ECHO,
    ECHO_SOURCE,
    FAST_WAIT,
    ROLE,
    LaminaServer,
    assert_aws_error,
    function_arn,
    invoke_json,
    make_zip,
    raw_zip,
)

NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
MAX_UNZIPPED = 262_144_000
ENV_LIMIT_PREFIX = ("Lambda was unable to configure your environment variables because the environment "
                    "variables you have provided exceeded the 4KB limit. String measured: ")
RESERVED_PREFIX = ("Lambda was unable to configure your environment variables because the environment "
                   "variables you have provided contains reserved keys that are currently not supported "
                   "for modification. Reserved keys used in this request: ")
CREATE_NAME_PATTERN_TAIL = r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
GET_NAME_PATTERN_TAIL = r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"


@pytest.fixture
def try_create(unvalidated_client: Any, unique_name: Callable[[str], str],
               cleanup_functions: list[str]) -> Callable[..., dict[str, Any]]:
    """CreateFunction with defaults filled in; the name is cleaned up if the call succeeded."""
    def create(zip_bytes: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "FunctionName": unique_name(""), "Runtime": "python3.11", "Handler": "app.handler",
            "Role": ROLE, "Code": {"ZipFile": make_zip(ECHO) if zip_bytes is None else zip_bytes}}
        params.update(kwargs)
        cleanup_functions.append(params["FunctionName"])
        response: dict[str, Any] = unvalidated_client.create_function(**params)
        return response
    return create


def _create_error(create: Callable[..., dict[str, Any]], **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as e:
        create(**kwargs)
    return e.value


# --- deployment packages ---------------------------------------------------------------------

def test_not_a_zip_is_refused(try_create: Callable[..., dict[str, Any]]) -> None:
    exc = _create_error(try_create, zip_bytes=b"this is not a zip archive")
    assert_aws_error(exc, 400, "InvalidParameterValueException", NOT_A_ZIP)


def test_truncated_zip_is_refused(try_create: Callable[..., dict[str, Any]]) -> None:
    whole = make_zip(ECHO)
    exc = _create_error(try_create, zip_bytes=whole[: len(whole) // 2])
    assert_aws_error(exc, 400, "InvalidParameterValueException", NOT_A_ZIP)


def test_empty_zip_is_refused(try_create: Callable[..., dict[str, Any]]) -> None:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    assert len(buf.getvalue()) == 22  # the end-of-central-directory record alone
    exc = _create_error(try_create, zip_bytes=buf.getvalue())
    assert_aws_error(exc, 400, "InvalidParameterValueException", "Uploaded file must be a non-empty zip")


def _zip_bomb(unzipped: int) -> bytes:
    """A small zip that inflates to `unzipped` bytes, written chunk by chunk."""
    buf = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("app.py", ECHO_SOURCE)
        info = zipfile.ZipInfo("zeros.bin", date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as f:
            left = unzipped
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    return buf.getvalue()


def test_zip_bomb_is_refused(try_create: Callable[..., dict[str, Any]], unvalidated_client: Any) -> None:
    bomb = _zip_bomb(MAX_UNZIPPED + (1 << 20))
    assert len(bomb) < 1 << 20
    name = f"bomb-{uuid.uuid4().hex[:8]}"
    exc = _create_error(try_create, zip_bytes=bomb, FunctionName=name)
    assert_aws_error(exc, 400, "InvalidParameterValueException",
                     f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")
    with pytest.raises(ClientError) as e:
        unvalidated_client.get_function(FunctionName=name)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(name)}")


def test_zip_slip_entries_never_land_outside(
        try_create: Callable[..., dict[str, Any]], unvalidated_client: Any,
        wait_active: Callable[[str], None]) -> None:
    """AWS documents nothing for `..` or absolute entries. Either the package is refused with the
    generic unzip message, or it is accepted and nothing is written outside the function's code."""
    marker = f"lamina-zipslip-{uuid.uuid4().hex}"
    escapes = [Path("/tmp") / f"{marker}-rel", Path("/tmp") / f"{marker}-abs"]
    package = raw_zip([
        ("app.py", ECHO_SOURCE.encode(), stat.S_IFREG | 0o644),
        ("../" * 24 + f"tmp/{marker}-rel", b"escaped", stat.S_IFREG | 0o644),
        (f"/tmp/{marker}-abs", b"escaped", stat.S_IFREG | 0o644),
    ])
    name = f"zipslip-{uuid.uuid4().hex[:8]}"
    try:
        try_create(zip_bytes=package, FunctionName=name)
    except ClientError as exc:
        assert_aws_error(exc, 400, "InvalidParameterValueException", NOT_A_ZIP)
    else:
        wait_active(name)
        _, payload = invoke_json(unvalidated_client, name, {"ok": 1})
        assert payload == {"ok": 1}
    for path in escapes:
        assert not path.exists(), f"zip entry escaped to {path}"


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A world-readable file on the host: only isolation can keep a function from reading it."""
    folder = Path(tempfile.mkdtemp(prefix="lamina-secret-", dir="/tmp"))
    folder.chmod(0o755)
    secret = folder / "secret.txt"
    secret.write_text(f"host-secret-{uuid.uuid4().hex}\n")
    secret.chmod(0o644)
    yield secret
    secret.unlink()
    folder.rmdir()


READER = (
    "import os\n"
    "def handler(event, context):\n"
    "    out = {}\n"
    "    for name in event['paths']:\n"
    "        path = os.path.join(os.environ.get('LAMBDA_TASK_ROOT', '/var/task'), name)\n"
    "        try:\n"
    "            if os.path.isdir(path):\n"
    "                out[name] = {'listdir': sorted(os.listdir(path))}\n"
    "            else:\n"
    "                with open(path, 'rb') as f:\n"
    "                    out[name] = {'read': f.read(65536).decode('utf-8', 'replace')}\n"
    "        except Exception as exc:\n"
    "            out[name] = {'error': type(exc).__name__}\n"
    "    return out\n"
)


def test_symlinks_are_kept_but_cannot_reach_host_files(
        try_create: Callable[..., dict[str, Any]], unvalidated_client: Any,
        wait_active: Callable[[str], None], server: LaminaServer, host_secret: Path) -> None:
    """AWS accepts symlink entries (they are kept in the package). Inside the sandbox a link
    to a host path resolves against the sandbox's own file system, never the host's."""
    link = stat.S_IFLNK | 0o777
    package = raw_zip([
        ("app.py", READER.encode(), stat.S_IFREG | 0o644),
        ("inner-link.py", b"app.py", link),
        ("shadow", b"/etc/shadow", link),
        ("secret", str(host_secret).encode(), link),
        ("data-dir", str(server.data_dir).encode(), link),
        ("up-link", b"../../../../../../../.." + str(host_secret).encode(), link),
    ])
    name = f"symlinks-{uuid.uuid4().hex[:8]}"
    created = try_create(zip_bytes=package, FunctionName=name)
    assert created["State"] == "Pending"
    wait_active(name)

    response, out = invoke_json(unvalidated_client, name,
                                {"paths": ["inner-link.py", "shadow", "secret", "data-dir", "up-link"]})
    assert "FunctionError" not in response, out
    # A link inside the package still works, as on AWS.
    assert out["inner-link.py"] == {"read": READER}

    secret_text = host_secret.read_text()
    for key in ("secret", "up-link"):
        assert secret_text not in json.dumps(out[key]), f"{key} read a host file: {out[key]}"
    if Path("/etc/shadow").exists():
        host_shadow = Path("/etc/shadow").read_text()
        assert out["shadow"].get("read") != host_shadow
        root_entry = next((line for line in host_shadow.splitlines() if line.startswith("root:")), None)
        if root_entry:
            assert root_entry not in json.dumps(out["shadow"])
    host_listing = sorted(os.listdir(server.data_dir))
    assert out["data-dir"].get("listdir") != host_listing or not host_listing


@pytest.mark.parametrize("mode", [0o000, 0o600], ids=["mode-000", "mode-600"])
def test_unreadable_handler_fails_at_import(
        try_create: Callable[..., dict[str, Any]], unvalidated_client: Any,
        wait_active: Callable[[str], None], mode: int) -> None:
    """AWS accepts the package; the runtime cannot read the file and reports an import error
    (Lambda runs code as an unprivileged user, so files need world read permission), to which
    Lamina adds what to do about it."""
    name = f"unreadable-{uuid.uuid4().hex[:8]}"
    try_create(zip_bytes=make_zip(ECHO, modes={"app.py": mode}), FunctionName=name)
    wait_active(name)
    response, payload = invoke_json(unvalidated_client, name, {"x": 1})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == (
        "Unable to import module 'app': [Errno 13] Permission denied: '/var/task/app.py' — files in the "
        "deployment package must be readable by all users (mode 644, directories 755)")


# --- function names --------------------------------------------------------------------------

def test_create_with_too_long_name(try_create: Callable[..., dict[str, Any]]) -> None:
    name = "a" * 65
    exc = _create_error(try_create, FunctionName=name)
    assert_aws_error(exc, 400, "InvalidParameterValueException",
                     f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
                     "constraint: Member must have length less than or equal to 64")


def test_create_with_too_long_arn(try_create: Callable[..., dict[str, Any]]) -> None:
    prefix = function_arn("")
    arn = prefix + "a" * (141 - len(prefix))
    exc = _create_error(try_create, FunctionName=arn)
    assert_aws_error(exc, 400, "ValidationException",
                     f"1 validation error detected: Value '{arn}' at 'functionName' failed to satisfy "
                     "constraint: Member must have length less than or equal to 140")


@pytest.mark.parametrize("name", ["my-function!", "invalid:function:name", "with space", "dots.not.ok"])
def test_create_with_bad_characters(try_create: Callable[..., dict[str, Any]], name: str) -> None:
    exc = _create_error(try_create, FunctionName=name)
    message = assert_aws_error(
        exc, 400, "ValidationException",
        prefix=f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy constraint: "
               "Member must satisfy regular expression pattern: ")
    assert message.endswith(CREATE_NAME_PATTERN_TAIL), message


def test_get_with_bad_characters(unvalidated_client: Any) -> None:
    with pytest.raises(ClientError) as e:
        unvalidated_client.get_function(FunctionName="my-function!")
    message = assert_aws_error(
        e.value, 400, "ValidationException",
        prefix="1 validation error detected: Value 'my-function!' at 'functionName' failed to satisfy "
               "constraint: Member must satisfy regular expression pattern: ")
    assert message.endswith(GET_NAME_PATTERN_TAIL), message


def test_get_with_long_name_is_not_found(unvalidated_client: Any) -> None:
    name = "a" * 65
    with pytest.raises(ClientError) as e:
        unvalidated_client.get_function(FunctionName=name)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(name)}")


# --- runtimes --------------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["python9.99", "PYTHON3.11", "cobol"])
def test_unknown_runtime(try_create: Callable[..., dict[str, Any]], runtime: str) -> None:
    exc = _create_error(try_create, Runtime=runtime)
    message = assert_aws_error(
        exc, 400, "InvalidParameterValueException",
        prefix=f"Value {runtime} at 'runtime' failed to satisfy constraint: "
               "Member must satisfy enum value set: [")
    assert message.endswith("] or be a valid ARN"), message
    listed = message.split("[", 1)[1].rsplit("]", 1)[0].split(", ")
    assert "python3.11" in listed


@pytest.mark.parametrize("runtime", ["python3.7", "nodejs12.x", "go1.x", "provided"])
def test_deprecated_runtime(try_create: Callable[..., dict[str, Any]], runtime: str) -> None:
    exc = _create_error(try_create, Runtime=runtime)
    assert_aws_error(
        exc, 400, "InvalidParameterValueException",
        f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
        "functions. We recommend you use a supported runtime while creating or updating functions.")


def test_runtime_the_host_cannot_serve(try_create: Callable[..., dict[str, Any]]) -> None:
    exc = _create_error(try_create, Runtime="java21", Handler="example.Handler::handleRequest")
    message = assert_aws_error(exc, 400, "InvalidParameterValueException")
    assert "java21" in message


def test_deprecated_runtime_on_update(
        unvalidated_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        # nodejs12.x is past its block-update date (python3.7 is past block-create only, until 2027-03-03)
        unvalidated_client.update_function_configuration(FunctionName=name, Runtime="nodejs12.x")
    assert_aws_error(
        e.value, 400, "InvalidParameterValueException",
        "The runtime parameter of nodejs12.x is no longer supported for creating or updating AWS Lambda "
        "functions. We recommend you use a supported runtime while creating or updating functions.")


# --- environment -----------------------------------------------------------------------------

def _measured(variables: dict[str, str]) -> str:
    return json.dumps(variables, separators=(",", ":"))


def test_environment_over_4kb(try_create: Callable[..., dict[str, Any]],
                              unvalidated_client: Any) -> None:
    variables = {"SMALL_VAR": "ok", "LARGE_VAR": "x" * 4064}
    assert len(_measured(variables)) == 4097
    name = f"bigenv-{uuid.uuid4().hex[:8]}"
    exc = _create_error(try_create, FunctionName=name, Environment={"Variables": variables})
    assert_aws_error(exc, 400, "InvalidParameterValueException", ENV_LIMIT_PREFIX + _measured(variables))
    with pytest.raises(ClientError):
        unvalidated_client.get_function(FunctionName=name)


def test_environment_of_exactly_4kb_is_accepted(try_create: Callable[..., dict[str, Any]]) -> None:
    variables = {"LARGE_VAR": "x" * (4096 - len(_measured({"LARGE_VAR": ""})))}
    assert len(_measured(variables)) == 4096
    created = try_create(Environment={"Variables": variables})
    assert created["Environment"] == {"Variables": variables}


def test_environment_over_4kb_on_update(
        unvalidated_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    variables = {"LARGE_VAR": "y" * 4100}
    with pytest.raises(ClientError) as e:
        unvalidated_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables})
    assert_aws_error(e.value, 400, "InvalidParameterValueException", ENV_LIMIT_PREFIX + _measured(variables))


# (_HANDLER is reserved too, but it fails the model's key pattern before the reserved-key check)
@pytest.mark.parametrize("key", ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_LAMBDA_FUNCTION_NAME"])
def test_reserved_environment_keys(try_create: Callable[..., dict[str, Any]], key: str) -> None:
    exc = _create_error(try_create, Environment={"Variables": {"FINE": "1", key: "x"}})
    assert_aws_error(exc, 400, "InvalidParameterValueException", RESERVED_PREFIX + key)


def test_reserved_environment_key_on_update(
        unvalidated_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        unvalidated_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"AWS_REGION": "eu-west-1"}})
    assert_aws_error(e.value, 400, "InvalidParameterValueException", RESERVED_PREFIX + "AWS_REGION")


# --- numeric ranges --------------------------------------------------------------------------

def _below(value: int, path: str, minimum: int) -> str:
    return (f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {minimum}")


def _above(value: int, path: str, maximum: int) -> str:
    return (f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {maximum}")


RANGE_CASES = [
    pytest.param({"MemorySize": 127}, _below(127, "memorySize", 128), id="memory-127"),
    # The model allows up to 32768 (managed instances); for a normal function AWS answers this way.
    pytest.param({"MemorySize": 10241},
                 "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal "
                 "to 10240", id="memory-10241"),
    pytest.param({"Timeout": 0}, _below(0, "timeout", 1), id="timeout-0"),
    pytest.param({"Timeout": 901}, _above(901, "timeout", 900), id="timeout-901"),
    pytest.param({"EphemeralStorage": {"Size": 511}}, _below(511, "ephemeralStorage.size", 512),
                 id="ephemeral-511"),
    pytest.param({"EphemeralStorage": {"Size": 10241}}, _above(10241, "ephemeralStorage.size", 10240),
                 id="ephemeral-10241"),
]


@pytest.mark.parametrize(("setting", "message"), RANGE_CASES)
def test_out_of_range_settings_on_create(try_create: Callable[..., dict[str, Any]],
                                         setting: dict[str, Any], message: str) -> None:
    exc = _create_error(try_create, **setting)
    assert_aws_error(exc, 400, "ValidationException", message)


@pytest.mark.parametrize(("setting", "message"), RANGE_CASES)
def test_out_of_range_settings_on_update(
        unvalidated_client: Any, create_function: Callable[..., str],
        setting: dict[str, Any], message: str) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        unvalidated_client.update_function_configuration(FunctionName=name, **setting)
    assert_aws_error(e.value, 400, "ValidationException", message)


@pytest.mark.parametrize("setting", [{"MemorySize": 128}, {"MemorySize": 10240}, {"Timeout": 1},
                                     {"Timeout": 900}, {"EphemeralStorage": {"Size": 512}},
                                     {"EphemeralStorage": {"Size": 10240}}],
                         ids=["memory-128", "memory-10240", "timeout-1", "timeout-900",
                              "ephemeral-512", "ephemeral-10240"])
def test_range_limits_are_inclusive(try_create: Callable[..., dict[str, Any]],
                                    setting: dict[str, Any]) -> None:
    created = try_create(**setting)
    for key, value in setting.items():
        assert created[key] == value


# --- invoke ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def echo_function(server: LaminaServer) -> Iterator[str]:
    client = server.client()
    name = f"bad-input-echo-{uuid.uuid4().hex[:8]}"
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({**ECHO, "big.py": (
                               "def handler(event, context):\n"
                               "    return 'a' * event['size']\n")})})
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    yield name
    client.delete_function(FunctionName=name)


@pytest.mark.parametrize("payload", [b"not json", b"{\"a\": ", b"\x87\x9e\xe9", b"{'single': 'quotes'}"],
                         ids=["word", "truncated", "not-utf8", "single-quotes"])
def test_invoke_with_non_json_payload(unvalidated_client: Any, echo_function: str, payload: bytes) -> None:
    with pytest.raises(ClientError) as e:
        unvalidated_client.invoke(FunctionName=echo_function, Payload=payload)
    assert_aws_error(e.value, 400, "InvalidRequestContentException",
                     prefix="Could not parse request body into json: Could not parse payload into json: ")


def test_invoke_with_payload_over_6mb(unvalidated_client: Any, echo_function: str) -> None:
    payload = json.dumps({"data": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as e:
        unvalidated_client.invoke(FunctionName=echo_function, Payload=payload)
    assert_aws_error(e.value, 413, "RequestEntityTooLargeException",
                     "Request must be smaller than 6291456 bytes for the InvokeFunction operation")


def test_invoke_with_payload_just_under_6mb(unvalidated_client: Any, echo_function: str) -> None:
    event = {"data": "x" * (6 * 1024 * 1024 - 100)}
    response, payload = invoke_json(unvalidated_client, echo_function, event)
    assert "FunctionError" not in response
    assert payload == event


def test_response_over_6mb_is_a_function_error(unvalidated_client: Any, echo_function: str) -> None:
    unvalidated_client.update_function_configuration(FunctionName=echo_function, Handler="big.handler")
    unvalidated_client.get_waiter("function_updated_v2").wait(
        FunctionName=echo_function, WaiterConfig=FAST_WAIT)
    try:
        for _ in range(2):  # the environment survives: a second call answers the same way
            response, payload = invoke_json(unvalidated_client, echo_function, {"size": 7 * 1024 * 1024})
            assert response["StatusCode"] == 200
            assert response["FunctionError"] == "Unhandled"
            assert payload == {
                "errorMessage":
                    "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                "errorType": "Function.ResponseSizeTooLarge"}
        # 6 MiB exactly is within the limit (AWS allows 6291456 + 100 bytes).
        response, payload = invoke_json(unvalidated_client, echo_function, {"size": 6 * 1024 * 1024 - 2})
        assert "FunctionError" not in response
        assert len(payload) == 6 * 1024 * 1024 - 2
    finally:
        unvalidated_client.update_function_configuration(FunctionName=echo_function, Handler="app.handler")
        unvalidated_client.get_waiter("function_updated_v2").wait(
            FunctionName=echo_function, WaiterConfig=FAST_WAIT)


def test_invoke_unknown_function(unvalidated_client: Any) -> None:
    name = f"does-not-exist-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as e:
        unvalidated_client.invoke(FunctionName=name, Payload=b"{}")
    assert_aws_error(e.value, 404, "ResourceNotFoundException",
                     f"Function not found: {function_arn(name)}:$LATEST")
