"""Published function versions as AWS Lambda answers them.

Covers PublishVersion, ListVersionsByFunction and the Qualifier of GetFunction,
GetFunctionConfiguration, Invoke and DeleteFunction. Expectations come from the Lambda API
reference, the "Manage Lambda function versions" guide (a published version's code and
configuration are immutable; publishing an unchanged $LATEST creates nothing new) and messages
recorded from AWS. Version numbers come from a per-function counter that deleting versions
does not wind back.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import ACCOUNT, FAST_WAIT, REGION, assert_aws_error, function_arn, invoke_json, make_zip

Fn = Callable[..., str]
Wait = Callable[[str], None]

REVISION_MISMATCH = ("The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
LATEST_DELETE = "$LATEST version cannot be deleted without deleting the function."


def tagged(tag: str) -> dict[str, str | bytes]:
    """A package whose handler reports `tag`, the STAGE variable and what its context says of the version."""
    return {"app.py": (
        "import os\n"
        "def handler(event, context):\n"
        f"    return {{'tag': {tag!r}, 'stage': os.environ.get('STAGE'),\n"
        "            'function_version': context.function_version,\n"
        "            'invoked_function_arn': context.invoked_function_arn}\n"
    )}


def not_found(name: str, qualifier: str | None = None) -> str:
    arn = function_arn(name)
    return f"Function not found: {arn}:{qualifier}" if qualifier else f"Function not found: {arn}"


@pytest.fixture
def publish(lambda_client: Any) -> Callable[..., dict[str, Any]]:
    """PublishVersion, then wait until the new version is Active."""
    def run(name: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = lambda_client.publish_version(FunctionName=name, **kwargs)
        lambda_client.get_waiter("function_active_v2").wait(
            FunctionName=name, Qualifier=response["Version"], WaiterConfig=FAST_WAIT)
        return response
    return run


@pytest.fixture
def update_code(lambda_client: Any, wait_updated: Wait) -> Callable[[str, str], None]:
    def run(name: str, tag: str) -> None:
        lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(tagged(tag)))
        wait_updated(name)
    return run


def versions_of(client: Any, name: str, **kwargs: Any) -> list[str]:
    return [v["Version"] for v in client.list_versions_by_function(FunctionName=name, **kwargs)["Versions"]]


# --- PublishVersion -----------------------------------------------------------------------------


def test_publish_numbers_versions_and_copies_latest(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"), Description="function description")
    latest = lambda_client.get_function_configuration(FunctionName=fn)

    first = publish(fn, Description="first release")
    assert first["Version"] == "1"
    assert first["FunctionArn"] == f"{function_arn(fn)}:1"
    assert first["FunctionName"] == fn
    assert first["CodeSha256"] == latest["CodeSha256"]
    assert first["CodeSize"] == latest["CodeSize"]
    assert first["Description"] == "first release"
    assert first["Handler"] == latest["Handler"]
    assert first["Runtime"] == latest["Runtime"]

    update_code(fn, "v2")
    latest2 = lambda_client.get_function_configuration(FunctionName=fn)
    assert latest2["CodeSha256"] != latest["CodeSha256"]
    second = publish(fn)
    assert second["Version"] == "2"
    assert second["FunctionArn"] == f"{function_arn(fn)}:2"
    assert second["CodeSha256"] == latest2["CodeSha256"]

    # $LATEST itself stays unpublished and keeps its own description
    again = lambda_client.get_function_configuration(FunctionName=fn)
    assert again["Version"] == "$LATEST"
    assert again["FunctionArn"] == function_arn(fn)
    assert again["Description"] == "function description"


def test_publish_without_changes_returns_latest_published(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    first = publish(fn)
    again = lambda_client.publish_version(FunctionName=fn)
    assert again["Version"] == first["Version"] == "1"
    assert again["FunctionArn"] == f"{function_arn(fn)}:1"
    assert again["CodeSha256"] == first["CodeSha256"]
    assert versions_of(lambda_client, fn) == ["$LATEST", "1"]


def test_published_version_is_immutable(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None], wait_updated: Wait) -> None:
    fn = create_function(tagged("v1"), Environment={"Variables": {"STAGE": "one"}}, MemorySize=128)
    publish(fn)

    lambda_client.update_function_configuration(
        FunctionName=fn, Environment={"Variables": {"STAGE": "two"}}, MemorySize=256)
    wait_updated(fn)
    update_code(fn, "v2")

    _, on_latest = invoke_json(lambda_client, fn)
    assert (on_latest["tag"], on_latest["stage"]) == ("v2", "two")
    _, on_one = invoke_json(lambda_client, fn, Qualifier="1")
    assert (on_one["tag"], on_one["stage"]) == ("v1", "one")

    one = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")
    assert one["Environment"] == {"Variables": {"STAGE": "one"}}
    assert one["MemorySize"] == 128

    # a configuration change alone is enough for a new version
    second = publish(fn)
    assert second["Version"] == "2"
    assert second["Environment"] == {"Variables": {"STAGE": "two"}}
    assert second["MemorySize"] == 256


def test_publish_configuration_change_only_creates_version(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        wait_updated: Wait) -> None:
    fn = create_function(tagged("v1"), Environment={"Variables": {"STAGE": "one"}})
    first = publish(fn)
    lambda_client.update_function_configuration(FunctionName=fn, Environment={"Variables": {"STAGE": "two"}})
    wait_updated(fn)
    second = publish(fn)
    assert second["Version"] == "2"
    assert second["CodeSha256"] == first["CodeSha256"]
    _, payload = invoke_json(lambda_client, fn, Qualifier="2")
    assert payload["stage"] == "two"
    _, payload = invoke_json(lambda_client, fn, Qualifier="1")
    assert payload["stage"] == "one"


def test_publish_code_sha256_precondition(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    sha = lambda_client.get_function_configuration(FunctionName=fn)["CodeSha256"]

    with pytest.raises(ClientError) as info:
        lambda_client.publish_version(FunctionName=fn, CodeSha256="somenonexistentsha256")
    assert_aws_error(
        info.value, 400, "InvalidParameterValueException",
        f"CodeSHA256 (somenonexistentsha256) is different from current CodeSHA256 in $LATEST ({sha}). "
        "Please try again with the CodeSHA256 in $LATEST.")
    assert versions_of(lambda_client, fn) == ["$LATEST"]

    published = publish(fn, CodeSha256=sha)
    assert published["Version"] == "1"


def test_publish_revision_id_precondition(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    with pytest.raises(ClientError) as info:
        lambda_client.publish_version(FunctionName=fn, RevisionId=str(uuid.uuid4()))
    assert_aws_error(info.value, 412, "PreconditionFailedException", REVISION_MISMATCH)
    assert versions_of(lambda_client, fn) == ["$LATEST"]

    revision = lambda_client.get_function(FunctionName=fn)["Configuration"]["RevisionId"]
    assert publish(fn, RevisionId=revision)["Version"] == "1"


def test_publish_unknown_function(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    fn = unique_name("")
    with pytest.raises(ClientError) as info:
        lambda_client.publish_version(FunctionName=fn)
    assert_aws_error(info.value, 404, "ResourceNotFoundException")


# --- ListVersionsByFunction ---------------------------------------------------------------------


def test_list_versions_order_and_pagination(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    update_code(fn, "v2")
    publish(fn)
    update_code(fn, "v3")
    publish(fn)

    listing = lambda_client.list_versions_by_function(FunctionName=fn)
    assert [v["Version"] for v in listing["Versions"]] == ["$LATEST", "1", "2", "3"]
    assert [v["FunctionArn"] for v in listing["Versions"]] == [
        f"{function_arn(fn)}:{q}" for q in ("$LATEST", "1", "2", "3")]
    assert "NextMarker" not in listing
    # the listing is by function ARN too
    assert versions_of(lambda_client, function_arn(fn)) == ["$LATEST", "1", "2", "3"]

    page1 = lambda_client.list_versions_by_function(FunctionName=fn, MaxItems=2)
    assert [v["Version"] for v in page1["Versions"]] == ["$LATEST", "1"]
    assert page1["NextMarker"]
    page2 = lambda_client.list_versions_by_function(FunctionName=fn, MaxItems=2, Marker=page1["NextMarker"])
    assert [v["Version"] for v in page2["Versions"]] == ["2", "3"]
    assert "NextMarker" not in page2

    paginator = lambda_client.get_paginator("list_versions_by_function")
    pages = list(paginator.paginate(FunctionName=fn, PaginationConfig={"PageSize": 1}))
    assert len(pages) == 4
    assert [v["Version"] for page in pages for v in page["Versions"]] == ["$LATEST", "1", "2", "3"]


def test_list_versions_unknown_function(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    fn = unique_name("")
    with pytest.raises(ClientError) as info:
        lambda_client.list_versions_by_function(FunctionName=fn)
    assert_aws_error(info.value, 404, "ResourceNotFoundException")


# --- Invoke and Get with a qualifier ------------------------------------------------------------


def test_invoke_published_version_every_way(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    update_code(fn, "v2")

    for kwargs in ({"FunctionName": fn, "Qualifier": "1"},
                   {"FunctionName": f"{fn}:1"},
                   {"FunctionName": f"{function_arn(fn)}:1"}):
        name = kwargs.pop("FunctionName")
        response, payload = invoke_json(lambda_client, name, **kwargs)
        assert response["StatusCode"] == 200
        assert response["ExecutedVersion"] == "1"
        assert payload["tag"] == "v1"
        assert payload["function_version"] == "1"
        assert payload["invoked_function_arn"] == f"{function_arn(fn)}:1"

    response, payload = invoke_json(lambda_client, fn)
    assert response["ExecutedVersion"] == "$LATEST"
    assert payload["tag"] == "v2"
    assert payload["function_version"] == "$LATEST"
    assert payload["invoked_function_arn"] == function_arn(fn)


def test_invoke_version_tail_names_version(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    response, _ = invoke_json(lambda_client, fn, Qualifier="1", LogType="Tail")
    rid = response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {rid} Version: 1" in log.splitlines()[0], log


def test_get_published_version(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    published = publish(fn, Description="one")
    update_code(fn, "v2")

    config = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")
    assert config["Version"] == "1"
    assert config["FunctionArn"] == f"{function_arn(fn)}:1"
    assert config["CodeSha256"] == published["CodeSha256"]
    assert config["Description"] == "one"

    whole = lambda_client.get_function(FunctionName=fn, Qualifier="1")
    assert whole["Configuration"]["Version"] == "1"
    assert whole["Configuration"]["CodeSha256"] == published["CodeSha256"]
    assert lambda_client.get_function_configuration(FunctionName=f"{fn}:1")["Version"] == "1"
    assert lambda_client.get_function(FunctionName=f"{function_arn(fn)}:1")["Configuration"]["Version"] == "1"

    latest = lambda_client.get_function(FunctionName=fn, Qualifier="$LATEST")["Configuration"]
    assert latest["Version"] == "$LATEST"
    assert latest["CodeSha256"] != published["CodeSha256"]


def test_unknown_version_is_not_found(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    expected = f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}:9"
    assert not_found(fn, "9") == expected
    for call in (lambda: lambda_client.get_function(FunctionName=fn, Qualifier="9"),
                 lambda: lambda_client.get_function_configuration(FunctionName=fn, Qualifier="9"),
                 lambda: lambda_client.invoke(FunctionName=fn, Qualifier="9", Payload=b"{}")):
        with pytest.raises(ClientError) as info:
            call()
        assert_aws_error(info.value, 404, "ResourceNotFoundException", expected)


# --- DeleteFunction with a qualifier ------------------------------------------------------------


def test_delete_one_version(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    update_code(fn, "v2")
    publish(fn)

    lambda_client.delete_function(FunctionName=fn, Qualifier="1")
    with pytest.raises(ClientError) as info:
        lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")
    assert_aws_error(info.value, 404, "ResourceNotFoundException", not_found(fn, "1"))
    with pytest.raises(ClientError) as info:
        lambda_client.invoke(FunctionName=fn, Qualifier="1", Payload=b"{}")
    assert_aws_error(info.value, 404, "ResourceNotFoundException", not_found(fn, "1"))

    assert versions_of(lambda_client, fn) == ["$LATEST", "2"]
    response, payload = invoke_json(lambda_client, fn)
    assert (response["ExecutedVersion"], payload["tag"]) == ("$LATEST", "v2")
    response, payload = invoke_json(lambda_client, fn, Qualifier="2")
    assert (response["ExecutedVersion"], payload["tag"]) == ("2", "v2")


def test_delete_latest_qualifier_refused(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    with pytest.raises(ClientError) as info:
        lambda_client.delete_function(FunctionName=fn, Qualifier="$LATEST")
    assert_aws_error(info.value, 400, "InvalidParameterValueException", LATEST_DELETE)
    assert versions_of(lambda_client, fn) == ["$LATEST", "1"]


def test_delete_unknown_version(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(tagged("v1"))
    with pytest.raises(ClientError) as info:
        lambda_client.delete_function(FunctionName=fn, Qualifier="7")
    assert_aws_error(info.value, 404, "ResourceNotFoundException")
    assert versions_of(lambda_client, fn) == ["$LATEST"]


def test_delete_function_removes_every_version(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    update_code(fn, "v2")
    publish(fn)

    lambda_client.delete_function(FunctionName=fn)
    with pytest.raises(ClientError) as info:
        lambda_client.get_function(FunctionName=fn)
    assert_aws_error(info.value, 404, "ResourceNotFoundException", not_found(fn))
    for qualifier in ("1", "2"):
        with pytest.raises(ClientError) as info:
            lambda_client.get_function_configuration(FunctionName=fn, Qualifier=qualifier)
        assert_aws_error(info.value, 404, "ResourceNotFoundException")
        with pytest.raises(ClientError) as info:
            lambda_client.invoke(FunctionName=fn, Qualifier=qualifier, Payload=b"{}")
        assert_aws_error(info.value, 404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as info:
        lambda_client.list_versions_by_function(FunctionName=fn)
    assert_aws_error(info.value, 404, "ResourceNotFoundException")


def test_version_numbers_not_reused(
        lambda_client: Any, create_function: Fn, publish: Callable[..., dict[str, Any]],
        update_code: Callable[[str, str], None]) -> None:
    fn = create_function(tagged("v1"))
    publish(fn)
    update_code(fn, "v2")
    assert publish(fn)["Version"] == "2"

    lambda_client.delete_function(FunctionName=fn, Qualifier="2")
    update_code(fn, "v3")
    third = publish(fn)
    assert third["Version"] == "3"
    assert third["FunctionArn"] == f"{function_arn(fn)}:3"
    assert versions_of(lambda_client, fn) == ["$LATEST", "1", "3"]
    _, payload = invoke_json(lambda_client, fn, Qualifier="3")
    assert (payload["tag"], payload["function_version"]) == ("v3", "3")
