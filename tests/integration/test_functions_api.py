"""Function CRUD through boto3, asserting what AWS Lambda answers.

Expected shapes and messages come from the Lambda API reference, botocore's service
model and responses recorded against AWS (create answers Pending with reason "Creating";
updates answer InProgress with AWS's own "The function is being created." wording;
unset members are left out).
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import (
    ACCOUNT,
    ECHO,
    LAST_MODIFIED_RE,
    REGION,
    ROLE,
    UUID_RE,
    assert_aws_error,
    code_sha256,
    function_arn,
    invoke_json,
    make_zip,
    versioned_handler,
)

CREATING = "The function is being created."


def _create_raw(client: Any, name: str, zip_bytes: bytes, cleanup: list[str],
                **kwargs: Any) -> dict[str, Any]:
    cleanup.append(name)
    response: dict[str, Any] = client.create_function(
        FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
        Code={"ZipFile": zip_bytes}, **kwargs)
    return response


def test_create_function_answers_pending_with_aws_shape(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str],
        wait_active: Callable[[str], None]) -> None:
    name = unique_name("")
    zip_bytes = make_zip(ECHO)
    created = _create_raw(lambda_client, name, zip_bytes, cleanup_functions)

    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["State"] == "Pending"
    assert created["StateReason"] == CREATING
    assert created["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in created
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == function_arn(name)
    assert created["CodeSha256"] == code_sha256(zip_bytes)
    assert created["CodeSize"] == len(zip_bytes)
    assert UUID_RE.match(created["RevisionId"])
    assert LAST_MODIFIED_RE.match(created["LastModified"]), created["LastModified"]
    assert created["Runtime"] == "python3.11"
    assert created["Handler"] == "app.handler"
    assert created["Role"] == ROLE
    assert created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["MemorySize"] == 128
    assert created["Timeout"] == 3
    assert created["Description"] == ""
    assert created["PackageType"] == "Zip"
    assert created["Version"] == "$LATEST"
    assert created["TracingConfig"] == {"Mode": "PassThrough"}
    assert created["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    # AWS leaves out what was never set.
    for member in ("Environment", "Layers", "KMSKeyArn", "VpcConfig", "DeadLetterConfig",
                   "LastUpdateStatusReason", "LastUpdateStatusReasonCode", "ImageConfigResponse",
                   "FileSystemConfigs", "SigningProfileVersionArn", "MasterArn"):
        assert member not in created, member

    wait_active(name)
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert config["State"] == "Active"
    assert config["LastUpdateStatus"] == "Successful"
    assert "StateReason" not in config
    assert "StateReasonCode" not in config
    assert config["CodeSha256"] == created["CodeSha256"]
    assert UUID_RE.match(config["RevisionId"])


def test_create_function_keeps_given_settings(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    name = unique_name("")
    created = _create_raw(
        lambda_client, name, make_zip(ECHO), cleanup_functions,
        Description="a description", MemorySize=256, Timeout=10,
        Environment={"Variables": {"GREETING": "hello"}}, EphemeralStorage={"Size": 1024},
        Architectures=["x86_64"])
    assert created["Description"] == "a description"
    assert created["MemorySize"] == 256
    assert created["Timeout"] == 10
    assert created["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert created["EphemeralStorage"] == {"Size": 1024}


def test_waiter_then_get_function_returns_configuration_and_code_location(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str],
        wait_active: Callable[[str], None]) -> None:
    name = unique_name("")
    zip_bytes = make_zip({**ECHO, "data/readme.txt": "some data\n"})
    _create_raw(lambda_client, name, zip_bytes, cleanup_functions)
    wait_active(name)

    got = lambda_client.get_function(FunctionName=name)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    config = got["Configuration"]
    assert config["State"] == "Active"
    assert config["FunctionArn"] == function_arn(name)
    assert config["CodeSha256"] == code_sha256(zip_bytes)
    assert config["CodeSize"] == len(zip_bytes)

    assert got["Code"]["RepositoryType"] == "S3"
    location = got["Code"]["Location"]
    assert location.startswith("http")
    # The location is a pre-authorised URL: a plain GET without credentials fetches the package.
    with urllib.request.urlopen(location, timeout=30) as r:
        assert r.status == 200
        assert r.read() == zip_bytes

    # GetFunctionConfiguration answers with the same configuration.
    only_config = lambda_client.get_function_configuration(FunctionName=name)
    only_config.pop("ResponseMetadata")
    assert only_config == config


def test_list_functions_paginates(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    prefix = unique_name("list")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        _create_raw(lambda_client, name, make_zip(ECHO), cleanup_functions)

    # Page by page with MaxItems/Marker.
    seen: list[str] = []
    marker: str | None = None
    for _ in range(1000):
        kwargs: dict[str, Any] = {"MaxItems": 1}
        if marker:
            kwargs["Marker"] = marker
        page = lambda_client.list_functions(**kwargs)
        assert len(page["Functions"]) <= 1
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert len(seen) == len(set(seen)), "a function was listed twice"
    assert set(names) <= set(seen)

    # boto3's paginator (input Marker, output NextMarker, limit MaxItems).
    paginator = lambda_client.get_paginator("list_functions")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    listed = [f for p in pages for f in p["Functions"]]
    assert all(len(p["Functions"]) <= 2 for p in pages)
    by_name = {f["FunctionName"]: f for f in listed}
    assert len(by_name) == len(listed)
    assert set(names) <= set(by_name)
    entry = by_name[names[0]]
    assert entry["FunctionArn"] == function_arn(names[0])
    assert entry["Runtime"] == "python3.11"
    assert entry["Version"] == "$LATEST"

    full = paginator.paginate().build_full_result()
    assert set(names) <= {f["FunctionName"] for f in full["Functions"]}


def test_update_function_code_goes_in_progress_then_serves_new_code(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    name = create_function(versioned_handler("v1"))
    _, before = invoke_json(lambda_client, name)
    assert before["version"] == "v1"
    old = lambda_client.get_function_configuration(FunctionName=name)

    new_zip = make_zip(versioned_handler("v2"))
    updated = lambda_client.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["LastUpdateStatusReason"] == CREATING
    assert updated["LastUpdateStatusReasonCode"] == "Creating"
    assert updated["State"] == "Active"
    assert updated["CodeSha256"] == code_sha256(new_zip)
    assert updated["CodeSha256"] != old["CodeSha256"]
    assert updated["CodeSize"] == len(new_zip)
    assert UUID_RE.match(updated["RevisionId"])
    assert updated["RevisionId"] != old["RevisionId"]

    wait_updated(name)
    config = lambda_client.get_function(FunctionName=name)["Configuration"]
    assert config["LastUpdateStatus"] == "Successful"
    assert "LastUpdateStatusReason" not in config
    assert "LastUpdateStatusReasonCode" not in config
    assert config["CodeSha256"] == code_sha256(new_zip)

    _, after = invoke_json(lambda_client, name)
    assert after["version"] == "v2"


def test_update_function_configuration_applies_every_setting(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    files = {**versioned_handler("v1"), "other.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    return {'handler': 'other', 'env': os.environ.get('COLOUR'),\n"
        "            'memory': int(context.memory_limit_in_mb),\n"
        "            'remaining_ms': context.get_remaining_time_in_millis()}\n")}
    name = create_function(files)
    old = lambda_client.get_function_configuration(FunctionName=name)

    updated = lambda_client.update_function_configuration(
        FunctionName=name, Handler="other.handler", Runtime="python3.11", MemorySize=256, Timeout=30,
        Environment={"Variables": {"COLOUR": "blue"}}, Description="changed",
        EphemeralStorage={"Size": 1024})
    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["LastUpdateStatusReason"] == CREATING
    assert updated["LastUpdateStatusReasonCode"] == "Creating"
    assert updated["Handler"] == "other.handler"
    assert updated["Runtime"] == "python3.11"
    assert updated["MemorySize"] == 256
    assert updated["Timeout"] == 30
    assert updated["Environment"] == {"Variables": {"COLOUR": "blue"}}
    assert updated["Description"] == "changed"
    assert updated["EphemeralStorage"] == {"Size": 1024}
    assert updated["CodeSha256"] == old["CodeSha256"]
    assert updated["RevisionId"] != old["RevisionId"]
    assert LAST_MODIFIED_RE.match(updated["LastModified"])

    wait_updated(name)
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert config["LastUpdateStatus"] == "Successful"
    for key in ("Handler", "Runtime", "MemorySize", "Timeout", "Environment", "Description",
                "EphemeralStorage", "CodeSha256"):
        assert config[key] == updated[key], key

    _, result = invoke_json(lambda_client, name)
    assert result["handler"] == "other"
    assert result["env"] == "blue"
    assert result["memory"] == 256
    assert 3_000 < result["remaining_ms"] <= 30_000


def test_update_function_configuration_can_switch_runtime(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    files = {**ECHO, "index.mjs": "export const handler = async (event) => ({ runtime: 'node', event });\n"}
    name = create_function(files)
    updated = lambda_client.update_function_configuration(
        FunctionName=name, Runtime="nodejs20.x", Handler="index.handler")
    assert updated["Runtime"] == "nodejs20.x"
    wait_updated(name)
    _, result = invoke_json(lambda_client, name, {"n": 1})
    assert result == {"runtime": "node", "event": {"n": 1}}


def test_update_function_configuration_checks_revision_id(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(
            FunctionName=name, Description="stale", RevisionId=str(uuid.uuid4()))
    assert_aws_error(
        e.value, 412, "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. "
        "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
    assert lambda_client.get_function_configuration(FunctionName=name)["Description"] == ""

    current = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    updated = lambda_client.update_function_configuration(
        FunctionName=name, Description="fresh", RevisionId=current)
    assert updated["Description"] == "fresh"
    wait_updated(name)


def test_update_while_in_progress_conflicts(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    """AWS refuses a second update while the first is InProgress (409).

    Lamina may finish an update before the next request arrives, so the conflict cannot be
    forced from outside; what is deterministic is checked: each of two back-to-back updates
    either succeeds or gets exactly AWS's 409, and the function settles on Successful.
    """
    name = create_function(ECHO)
    arn = function_arn(name)
    outcomes: list[BaseException | dict[str, Any]] = []

    def update(i: int) -> None:
        try:
            outcomes.append(lambda_client.update_function_configuration(
                FunctionName=name, Environment={"Variables": {"TURN": str(i)}}))
        except ClientError as exc:
            outcomes.append(exc)

    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"TURN": "0"}})
    threads = [threading.Thread(target=update, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert_aws_error(
                outcome, 409, "ResourceConflictException",
                "The operation cannot be performed at this time. "
                f"An update is in progress for resource: {arn}")
        else:
            assert outcome["LastUpdateStatus"] == "InProgress"
    wait_updated(name)
    assert lambda_client.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful"


def test_update_code_while_in_progress_conflicts_or_succeeds(
        lambda_client: Any, create_function: Callable[..., str],
        wait_updated: Callable[[str], None]) -> None:
    """Same rule for code updates (see the test above for why both outcomes are allowed)."""
    name = create_function(versioned_handler("v1"))
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(versioned_handler("v2")))
    try:
        lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(versioned_handler("v3")))
        expected = "v3"
    except ClientError as exc:
        assert_aws_error(
            exc, 409, "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for resource: "
            f"{function_arn(name)}")
        expected = "v2"
    wait_updated(name)
    _, result = invoke_json(lambda_client, name)
    assert result["version"] == expected


def test_delete_function_then_not_found(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str],
        wait_active: Callable[[str], None]) -> None:
    name = unique_name("")
    _create_raw(lambda_client, name, make_zip(ECHO), cleanup_functions)
    wait_active(name)
    deleted = lambda_client.delete_function(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204

    not_found = f"Function not found: {function_arn(name)}"
    for call in (lambda_client.get_function, lambda_client.get_function_configuration,
                 lambda_client.delete_function):
        with pytest.raises(ClientError) as e:
            call(FunctionName=name)
        assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"{not_found}:$LATEST")
    assert name not in {f["FunctionName"] for f in
                        lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]}


def test_get_unknown_function_is_not_found(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    name = unique_name("missing")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.get_function(FunctionName=name)
    error = e.value.response
    assert error["Error"]["Message"] == f"Function not found: {function_arn(name)}"
    # AWS's JSON error body carries Type "User" for client errors.
    assert error.get("Type") == "User"


def test_duplicate_create_conflicts(
        lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(
            FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
            Code={"ZipFile": make_zip(ECHO)})
    assert_aws_error(e.value, 409, "ResourceConflictException", f"Function already exist: {name}")


@pytest.mark.parametrize("form", ["name", "partial_arn", "full_arn", "full_arn_latest"])
def test_get_and_invoke_accept_name_and_arn_forms(
        lambda_client: Any, create_function: Callable[..., str], form: str) -> None:
    name = create_function(ECHO)
    ref = {"name": name, "partial_arn": f"{ACCOUNT}:function:{name}", "full_arn": function_arn(name),
           "full_arn_latest": f"{function_arn(name)}:$LATEST"}[form]
    assert lambda_client.get_function(FunctionName=ref)["Configuration"]["FunctionName"] == name
    assert lambda_client.get_function_configuration(FunctionName=ref)["FunctionName"] == name
    response, payload = invoke_json(lambda_client, ref, {"form": form})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert payload == {"form": form}


@pytest.mark.parametrize("form", ["name", "partial_arn", "full_arn"])
def test_delete_accepts_name_and_arn_forms(
        lambda_client: Any, create_function: Callable[..., str], form: str) -> None:
    name = create_function(ECHO)
    ref = {"name": name, "partial_arn": f"{ACCOUNT}:function:{name}", "full_arn": function_arn(name)}[form]
    lambda_client.delete_function(FunctionName=ref)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)


def test_arn_from_another_region_is_not_reachable(
        lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    other = "eu-west-1"
    assert other != REGION
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=function_arn(name, region=other))
    assert_aws_error(e.value, 404, "ResourceNotFoundException",
                     f"Functions from '{other}' are not reachable in this region ('{REGION}')")


def test_s3_code_is_refused_clearly(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    name = unique_name("")
    cleanup_functions.append(name)
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(
            FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
            Code={"S3Bucket": "my-bucket", "S3Key": "code.zip"})
    message = assert_aws_error(e.value, 400, "InvalidParameterValueException")
    assert "S3" in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)


def test_get_account_settings_shape(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    before = lambda_client.get_account_settings()
    limit, usage = before["AccountLimit"], before["AccountUsage"]
    assert set(limit) == {"TotalCodeSize", "CodeSizeUnzipped", "CodeSizeZipped", "ConcurrentExecutions",
                          "UnreservedConcurrentExecutions"}
    assert limit["CodeSizeUnzipped"] == 262_144_000
    assert limit["CodeSizeZipped"] == 52_428_800
    assert limit["ConcurrentExecutions"] > 0
    assert 0 < limit["UnreservedConcurrentExecutions"] <= limit["ConcurrentExecutions"]
    assert set(usage) == {"TotalCodeSize", "FunctionCount"}

    zip_bytes = make_zip({"app.py": f"# {uuid.uuid4()}\ndef handler(event, context):\n    return event\n"})
    _create_raw(lambda_client, unique_name(""), zip_bytes, cleanup_functions)
    after = lambda_client.get_account_settings()["AccountUsage"]
    assert after["FunctionCount"] == usage["FunctionCount"] + 1
    assert after["TotalCodeSize"] == usage["TotalCodeSize"] + len(zip_bytes)
