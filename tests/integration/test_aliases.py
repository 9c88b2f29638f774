"""Function aliases as AWS Lambda answers them.

Covers CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, weighted routing through
AliasRoutingConfiguration.AdditionalVersionWeights, the alias qualifier of Invoke, GetFunction and
GetFunctionConfiguration, and provisioned concurrency configured on an alias. Expectations come from
the Lambda API reference and messages recorded from AWS: GetAlias of an unknown alias says
"Cannot find alias arn", UpdateAlias of one says "Alias not found", invoking one says
"Function not found".
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import FAST_WAIT, assert_aws_error, function_arn, invoke_json

Fn = Callable[..., str]

REVISION_MISMATCH = ("The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
NAME_PATTERN = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
WEIGHT_RANGE = ("Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                "Member must have value greater than or equal to 0.0")

REPORTER: dict[str, str | bytes] = {"app.py": (
    "def handler(event, context):\n"
    "    return {'function_version': context.function_version,\n"
    "            'invoked_function_arn': context.invoked_function_arn}\n"
)}
SLOW_INIT: dict[str, str | bytes] = {"app.py": (
    "import time\n"
    "time.sleep(0.3)\n"
    "def handler(event, context):\n"
    "    return context.function_version\n"
)}


@pytest.fixture
def versions(lambda_client: Any) -> Callable[[str, int], list[str]]:
    """Publish `count` versions of a function (each after an environment change) and wait for them."""
    def run(name: str, count: int) -> list[str]:
        published: list[str] = []
        for _ in range(count):
            lambda_client.update_function_configuration(
                FunctionName=name, Environment={"Variables": {"REVISION": uuid.uuid4().hex}})
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
            version = lambda_client.publish_version(FunctionName=name)["Version"]
            lambda_client.get_waiter("function_active_v2").wait(
                FunctionName=name, Qualifier=version, WaiterConfig=FAST_WAIT)
            published.append(version)
        return published
    return run


@pytest.fixture
def two_versions(create_function: Fn, versions: Callable[[str, int], list[str]]) -> str:
    """A function with published versions 1 and 2; returns its name."""
    name = create_function(REPORTER)
    assert versions(name, 2) == ["1", "2"]
    return name


def alias_arn(name: str, alias: str) -> str:
    return f"{function_arn(name)}:{alias}"


# --- CreateAlias / GetAlias ---------------------------------------------------------------------


def test_create_and_get_alias(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    created = lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1",
                                         Description="production traffic")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == alias_arn(fn, "live")
    assert created["Name"] == "live"
    assert created["FunctionVersion"] == "1"
    assert created["Description"] == "production traffic"
    revision = created["RevisionId"]
    uuid.UUID(revision)
    assert not created.get("RoutingConfig", {}).get("AdditionalVersionWeights")

    got = lambda_client.get_alias(FunctionName=fn, Name="live")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    for key in ("AliasArn", "Name", "FunctionVersion", "Description", "RevisionId"):
        assert got[key] == created[key], key

    # the function may be named by its ARN too
    by_arn = lambda_client.get_alias(FunctionName=function_arn(fn), Name="live")
    assert by_arn["AliasArn"] == alias_arn(fn, "live")


def test_alias_may_point_at_latest(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(REPORTER)
    created = lambda_client.create_alias(FunctionName=fn, Name="dev", FunctionVersion="$LATEST")
    assert created["FunctionVersion"] == "$LATEST"
    response, body = invoke_json(lambda_client, fn, Qualifier="dev")
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["invoked_function_arn"] == alias_arn(fn, "dev")


def test_duplicate_alias_conflicts(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    lambda_client.create_alias(FunctionName=fn, Name="custom", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lambda_client.create_alias(FunctionName=fn, Name="custom", FunctionVersion="2")
    assert_aws_error(exc.value, 409, "ResourceConflictException", f"Alias already exists: {alias_arn(fn, 'custom')}")
    assert lambda_client.get_alias(FunctionName=fn, Name="custom")["FunctionVersion"] == "1"


def test_all_digit_alias_name_is_invalid(lambda_client: Any, two_versions: str) -> None:
    with pytest.raises(ClientError) as exc:
        lambda_client.create_alias(FunctionName=two_versions, Name="2024", FunctionVersion="1")
    assert_aws_error(exc.value, 400, "ValidationException",
                     "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: "
                     f"Member must satisfy regular expression pattern: {NAME_PATTERN}")


def test_alias_to_missing_version_not_found(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    with pytest.raises(ClientError) as exc:
        lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="10")
    assert_aws_error(exc.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(fn)}:10")


def test_unknown_alias_not_found(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    with pytest.raises(ClientError) as exc:
        lambda_client.get_alias(FunctionName=fn, Name="non-existent")
    assert_aws_error(exc.value, 404, "ResourceNotFoundException",
                     f"Cannot find alias arn: {alias_arn(fn, 'non-existent')}")
    with pytest.raises(ClientError) as exc:
        lambda_client.update_alias(FunctionName=fn, Name="non-existent", FunctionVersion="1")
    assert_aws_error(exc.value, 404, "ResourceNotFoundException",
                     f"Alias not found: {alias_arn(fn, 'non-existent')}")
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fn, Qualifier="non-existent-alias")
    assert_aws_error(exc.value, 404, "ResourceNotFoundException",
                     f"Function not found: {alias_arn(fn, 'non-existent-alias')}")


# --- Routing configuration errors ---------------------------------------------------------------


def test_routing_config_errors(lambda_client: Any, unvalidated_client: Any, create_function: Fn,
                               versions: Callable[[str, int], list[str]]) -> None:
    fn = create_function(REPORTER)
    versions(fn, 3)

    def create(client: Any, version: str, weights: dict[str, float]) -> ClientError:
        with pytest.raises(ClientError) as exc:
            client.create_alias(FunctionName=fn, Name="routed", FunctionVersion=version,
                                RoutingConfig={"AdditionalVersionWeights": weights})
        return exc.value

    assert_aws_error(create(lambda_client, "$LATEST", {"1": 0.5}), 400, "InvalidParameterValueException",
                     "$LATEST is not supported for an alias pointing to more than 1 version")
    assert_aws_error(create(lambda_client, "1", {"2": 0.2, "3": 0.2}), 400, "InvalidParameterValueException",
                     "Number of items in AdditionalVersionWeights cannot be greater than 1")
    assert_aws_error(create(lambda_client, "1", {"1": 0.5}), 400, "InvalidParameterValueException",
                     "Invalid function version 1. Function version 1 is already included in routing configuration.")
    assert_aws_error(create(unvalidated_client, "1", {"2": -1.0}), 400, "ValidationException",
                     prefix="1 validation error detected: Value '{2=-1.0}' at "
                            f"'routingConfig.additionalVersionWeights' failed to satisfy constraint: {WEIGHT_RANGE}")
    assert_aws_error(create(unvalidated_client, "1", {"2": 2.0}), 400, "ValidationException",
                     prefix="1 validation error detected: Value '{2=2.0}' at "
                            f"'routingConfig.additionalVersionWeights' failed to satisfy constraint: {WEIGHT_RANGE}")
    assert_aws_error(create(unvalidated_client, "1", {"$LATEST": 0.5}), 400, "ValidationException",
                     prefix="1 validation error detected: Value '{$LATEST=0.5}' at "
                            "'routingConfig.additionalVersionWeights' failed to satisfy constraint: "
                            "Map keys must satisfy constraint: [")
    assert_aws_error(create(lambda_client, "1", {"10": 0.5}), 404, "ResourceNotFoundException",
                     f"Function not found: {function_arn(fn)}:10")
    # none of the refused requests left an alias behind
    assert lambda_client.list_aliases(FunctionName=fn)["Aliases"] == []


# --- ListAliases --------------------------------------------------------------------------------


def test_list_aliases_filter_and_paging(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    placed = {"a-one": "1", "b-two": "2", "c-one": "1", "d-two": "2", "e-one": "1"}
    for alias, version in placed.items():
        lambda_client.create_alias(FunctionName=fn, Name=alias, FunctionVersion=version)

    listed = lambda_client.list_aliases(FunctionName=fn)
    assert "NextMarker" not in listed
    assert {a["Name"]: a["FunctionVersion"] for a in listed["Aliases"]} == placed
    for entry in listed["Aliases"]:
        assert entry["AliasArn"] == alias_arn(fn, entry["Name"])
        uuid.UUID(entry["RevisionId"])

    only_two = lambda_client.list_aliases(FunctionName=fn, FunctionVersion="2")["Aliases"]
    assert sorted(a["Name"] for a in only_two) == ["b-two", "d-two"]

    seen: list[str] = []
    marker: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lambda_client.list_aliases(FunctionName=fn, **kwargs)
        pages += 1
        assert len(page["Aliases"]) <= 2
        seen.extend(a["Name"] for a in page["Aliases"])
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(placed) and len(seen) == len(set(seen))


# --- UpdateAlias / DeleteAlias ------------------------------------------------------------------


def test_update_alias_moves_and_checks_revision(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    created = lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1", Description="keep me")

    with pytest.raises(ClientError) as exc:
        lambda_client.update_alias(FunctionName=fn, Name="live", FunctionVersion="2", RevisionId=str(uuid.uuid4()))
    assert_aws_error(exc.value, 412, "PreconditionFailedException", REVISION_MISMATCH)
    assert lambda_client.get_alias(FunctionName=fn, Name="live")["FunctionVersion"] == "1"

    updated = lambda_client.update_alias(FunctionName=fn, Name="live", FunctionVersion="2",
                                         RevisionId=created["RevisionId"])
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["FunctionVersion"] == "2"
    assert updated["AliasArn"] == alias_arn(fn, "live")
    assert updated["Description"] == "keep me"  # fields not sent are kept
    assert updated["RevisionId"] != created["RevisionId"]
    assert lambda_client.get_alias(FunctionName=fn, Name="live")["RevisionId"] == updated["RevisionId"]

    response, body = invoke_json(lambda_client, fn, Qualifier="live")
    assert response["ExecutedVersion"] == "2"
    assert body["function_version"] == "2"

    # the old revision id is stale now
    with pytest.raises(ClientError) as exc:
        lambda_client.update_alias(FunctionName=fn, Name="live", Description="x", RevisionId=created["RevisionId"])
    assert_aws_error(exc.value, 412, "PreconditionFailedException", REVISION_MISMATCH)

    described = lambda_client.update_alias(FunctionName=fn, Name="live", Description="new words")
    assert described["Description"] == "new words"
    assert described["FunctionVersion"] == "2"


def test_delete_alias(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    lambda_client.create_alias(FunctionName=fn, Name="gone", FunctionVersion="1")
    deleted = lambda_client.delete_alias(FunctionName=fn, Name="gone")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lambda_client.get_alias(FunctionName=fn, Name="gone")
    assert_aws_error(exc.value, 404, "ResourceNotFoundException", f"Cannot find alias arn: {alias_arn(fn, 'gone')}")
    assert lambda_client.list_aliases(FunctionName=fn)["Aliases"] == []
    # the version it pointed at is untouched
    assert lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")["Version"] == "1"


# --- Invoke and reads through an alias ----------------------------------------------------------


def test_invoke_by_alias(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    for kwargs in ({"FunctionName": fn, "Qualifier": "live"}, {"FunctionName": alias_arn(fn, "live")},
                   {"FunctionName": function_arn(fn), "Qualifier": "live"}):
        name = kwargs.pop("FunctionName")
        response, body = invoke_json(lambda_client, name, **kwargs)
        assert response["StatusCode"] == 200
        assert "FunctionError" not in response
        assert response["ExecutedVersion"] == "1"
        assert body["function_version"] == "1"
        assert body["invoked_function_arn"] == alias_arn(fn, "live")


def test_get_function_by_alias(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    version_config = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")

    # the answer is the version's configuration; only FunctionArn names the alias
    config = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="live")
    assert config["Version"] == "1"
    assert config["FunctionArn"] == alias_arn(fn, "live")
    for key in ("CodeSha256", "Description", "RevisionId", "Handler", "Runtime", "MemorySize", "Timeout"):
        assert config[key] == version_config[key], key

    whole = lambda_client.get_function(FunctionName=fn, Qualifier="live")
    assert whole["Configuration"]["Version"] == "1"
    assert whole["Configuration"]["FunctionArn"] == alias_arn(fn, "live")
    assert whole["Configuration"]["CodeSha256"] == version_config["CodeSha256"]
    assert whole["Configuration"]["Description"] == version_config["Description"]

    by_arn = lambda_client.get_function_configuration(FunctionName=alias_arn(fn, "live"))
    assert by_arn["Version"] == "1"


def test_weighted_routing(lambda_client: Any, two_versions: str) -> None:
    fn = two_versions
    created = lambda_client.create_alias(FunctionName=fn, Name="canary", FunctionVersion="1",
                                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    assert lambda_client.get_alias(FunctionName=fn, Name="canary")["RoutingConfig"] == \
        {"AdditionalVersionWeights": {"2": 0.3}}

    total = 300
    on_two = 0
    for _ in range(total):
        response, body = invoke_json(lambda_client, fn, Qualifier="canary")
        assert response["ExecutedVersion"] in ("1", "2")
        assert body["function_version"] == response["ExecutedVersion"]
        assert body["invoked_function_arn"] == alias_arn(fn, "canary")
        on_two += response["ExecutedVersion"] == "2"
    # binomial(300, 0.3): sd ~ 0.026, so ±0.1 is almost four standard deviations
    assert 0.2 <= on_two / total <= 0.4, on_two

    # dropping the routing configuration sends everything to the primary version
    lambda_client.update_alias(FunctionName=fn, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}})
    for _ in range(20):
        response, _ = invoke_json(lambda_client, fn, Qualifier="canary")
        assert response["ExecutedVersion"] == "1"


# --- Provisioned concurrency on an alias --------------------------------------------------------


def test_provisioned_concurrency_on_alias(lambda_client: Any, create_function: Fn,
                                         versions: Callable[[str, int], list[str]]) -> None:
    fn = create_function(SLOW_INIT)
    assert versions(fn, 1) == ["1"]
    lambda_client.create_alias(FunctionName=fn, Name="warm", FunctionVersion="1")

    put = lambda_client.put_provisioned_concurrency_config(
        FunctionName=fn, Qualifier="warm", ProvisionedConcurrentExecutions=1)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 1

    deadline = time.monotonic() + 15
    while True:
        config = lambda_client.get_provisioned_concurrency_config(FunctionName=fn, Qualifier="warm")
        if config["Status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert config["Status"] == "READY"
    assert config["AllocatedProvisionedConcurrentExecutions"] == 1

    response = lambda_client.invoke(FunctionName=fn, Qualifier="warm", LogType="Tail")
    assert response["ExecutedVersion"] == "1"
    assert response["Payload"].read() == b'"1"'
    report = base64.b64decode(response["LogResult"]).decode().splitlines()[-1]
    assert report.startswith("REPORT ") and "Init Duration" not in report

    lambda_client.delete_provisioned_concurrency_config(FunctionName=fn, Qualifier="warm")
