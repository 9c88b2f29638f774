"""Put/Get/Update/Delete/ListFunctionEventInvokeConfigs and DeadLetterConfig through boto3,
against the session's server (which has no SQS endpoint), with AWS's recorded messages.

Delivery under these settings is tested in test_async.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import ECHO, assert_aws_error, function_arn

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:dead-letters"


def no_config(arn: str) -> str:
    return f"The function {arn} doesn't have an EventInvokeConfig"


def test_put_get_update_delete_on_latest(lambda_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    put = lambda_client.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=1,
                                                         MaximumEventAgeInSeconds=100)
    assert put["FunctionArn"] == f"{function_arn(fn)}:$LATEST"
    assert put["MaximumRetryAttempts"] == 1
    assert put["MaximumEventAgeInSeconds"] == 100
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert isinstance(put["LastModified"], datetime.datetime)

    got = lambda_client.get_function_event_invoke_config(FunctionName=fn)
    assert {k: got[k] for k in ("FunctionArn", "MaximumRetryAttempts", "MaximumEventAgeInSeconds")} == \
        {k: put[k] for k in ("FunctionArn", "MaximumRetryAttempts", "MaximumEventAgeInSeconds")}

    # update merges: what it does not name stays
    updated = lambda_client.update_function_event_invoke_config(FunctionName=fn, MaximumEventAgeInSeconds=200)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 200)

    # put replaces: what it does not name is gone
    replaced = lambda_client.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=0)
    assert replaced["MaximumRetryAttempts"] == 0
    assert "MaximumEventAgeInSeconds" not in replaced
    assert "MaximumEventAgeInSeconds" not in lambda_client.get_function_event_invoke_config(FunctionName=fn)

    lambda_client.delete_function_event_invoke_config(FunctionName=fn)
    for call in (lambda_client.get_function_event_invoke_config, lambda_client.delete_function_event_invoke_config):
        with pytest.raises(Exception) as exc:
            call(FunctionName=fn)
        assert_aws_error(exc.value, 404, "ResourceNotFoundException", no_config(f"{function_arn(fn)}:$LATEST"))
    assert lambda_client.list_function_event_invoke_configs(FunctionName=fn)["FunctionEventInvokeConfigs"] == []


def test_configs_per_version_and_alias(lambda_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    version = lambda_client.publish_version(FunctionName=fn)["Version"]
    lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    with pytest.raises(Exception) as exc:
        lambda_client.get_function_event_invoke_config(FunctionName=fn, Qualifier=version)
    assert_aws_error(exc.value, 404, "ResourceNotFoundException", no_config(f"{function_arn(fn)}:{version}"))

    lambda_client.put_function_event_invoke_config(FunctionName=fn, Qualifier="live", MaximumRetryAttempts=2)
    lambda_client.put_function_event_invoke_config(FunctionName=f"{fn}:{version}", MaximumRetryAttempts=1)
    lambda_client.put_function_event_invoke_config(FunctionName=function_arn(fn), MaximumRetryAttempts=0)

    listed = lambda_client.list_function_event_invoke_configs(FunctionName=fn)["FunctionEventInvokeConfigs"]
    assert [(c["FunctionArn"], c["MaximumRetryAttempts"]) for c in listed] == [
        (f"{function_arn(fn)}:$LATEST", 0), (f"{function_arn(fn)}:{version}", 1), (f"{function_arn(fn)}:live", 2)]
    assert lambda_client.get_function_event_invoke_config(FunctionName=fn, Qualifier="live")[
        "MaximumRetryAttempts"] == 2

    page = lambda_client.list_function_event_invoke_configs(FunctionName=fn, MaxItems=2)
    assert len(page["FunctionEventInvokeConfigs"]) == 2
    rest = lambda_client.list_function_event_invoke_configs(FunctionName=fn, Marker=page["NextMarker"])
    assert [c["FunctionArn"] for c in rest["FunctionEventInvokeConfigs"]] == [f"{function_arn(fn)}:live"]
    assert "NextMarker" not in rest

    # deleting the alias and the version takes their settings with them
    lambda_client.delete_alias(FunctionName=fn, Name="live")
    lambda_client.delete_function(FunctionName=fn, Qualifier=version)
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=fn)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"{function_arn(fn)}:$LATEST"]


def test_missing_functions_versions_and_aliases(lambda_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    cases: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
        (lambda_client.put_function_event_invoke_config, {"FunctionName": "doesnotexist", "MaximumRetryAttempts": 1},
         "The function doesn't exist."),
        (lambda_client.put_function_event_invoke_config,
         {"FunctionName": fn, "Qualifier": "doesnotexist", "MaximumRetryAttempts": 1},
         "The function doesn't exist."),
        (lambda_client.get_function_event_invoke_config, {"FunctionName": "doesnotexist"},
         no_config(f"{function_arn('doesnotexist')}:$LATEST")),
        (lambda_client.get_function_event_invoke_config, {"FunctionName": fn, "Qualifier": "doesnotexist"},
         no_config(f"{function_arn(fn)}:doesnotexist")),
        (lambda_client.get_function_event_invoke_config, {"FunctionName": fn, "Qualifier": "1221"},
         no_config(f"{function_arn(fn)}:1221")),
        (lambda_client.update_function_event_invoke_config, {"FunctionName": fn, "MaximumRetryAttempts": 1},
         no_config(f"{function_arn(fn)}:$LATEST")),
        (lambda_client.list_function_event_invoke_configs, {"FunctionName": "doesnotexist"},
         "The function doesn't exist."),
    ]
    for call, params, message in cases:
        with pytest.raises(Exception) as exc:
            call(**params)
        assert_aws_error(exc.value, 404, "ResourceNotFoundException", message)


def test_invalid_settings_are_refused(lambda_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    other = create_function(ECHO, name=f"{fn}-target")
    me = function_arn(fn)
    iam = f"arn:aws:iam:us-east-1:000000000000:function:{other}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "You must specify at least one of error handling or destination setting."),
        ({"DestinationConfig": {"OnSuccess": {"Destination": function_arn("doesnotexist")}}},
         f"The destination ARN {function_arn('doesnotexist')} is invalid."),
        ({"DestinationConfig": {"OnFailure": {"Destination": me}}},
         "You can't specify the function as a destination for itself."),
        ({"DestinationConfig": {"OnSuccess": {"Destination": f"{me}:$LATEST"}}},
         "You can't specify the function as a destination for itself."),
        ({"DestinationConfig": {"OnSuccess": {"Destination": iam}}},
         f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={iam}), "
         "onFailure=null) is invalid."),
    ]
    for params, message in cases:
        with pytest.raises(Exception) as exc:
            lambda_client.put_function_event_invoke_config(FunctionName=fn, **params)
        assert_aws_error(exc.value, 400, "InvalidParameterValueException", message)
    # nothing was stored by the refused calls
    assert lambda_client.list_function_event_invoke_configs(FunctionName=fn)["FunctionEventInvokeConfigs"] == []

    ok = lambda_client.put_function_event_invoke_config(
        FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": function_arn(other)}})
    assert ok["DestinationConfig"] == {"OnSuccess": {"Destination": function_arn(other)}, "OnFailure": {}}
    # an update naming only OnFailure keeps OnSuccess
    with pytest.raises(Exception) as exc:
        lambda_client.update_function_event_invoke_config(FunctionName=fn,
                                                          DestinationConfig={"OnFailure": {"Destination": me}})
    assert_aws_error(exc.value, 400, "InvalidParameterValueException",
                     "You can't specify the function as a destination for itself.")
    assert lambda_client.get_function_event_invoke_config(FunctionName=fn)["DestinationConfig"]["OnSuccess"] == \
        {"Destination": function_arn(other)}


def test_out_of_range_values_fail_validation(unvalidated_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    bad_arn = f"arn:aws:_-/!lambda:us-east-1:000000000000:function:{fn}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"MaximumRetryAttempts": 3},
         "Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: "
         "Member must have value less than or equal to 2"),
        ({"MaximumRetryAttempts": -1},
         "Value '-1' at 'maximumRetryAttempts' failed to satisfy constraint: "
         "Member must have value greater than or equal to 0"),
        ({"MaximumEventAgeInSeconds": 59},
         "Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
         "Member must have value greater than or equal to 60"),
        ({"MaximumEventAgeInSeconds": 21601},
         "Value '21601' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
         "Member must have value less than or equal to 21600"),
    ]
    for params, message in cases:
        with pytest.raises(Exception) as exc:
            unvalidated_client.put_function_event_invoke_config(FunctionName=fn, **params)
        assert_aws_error(exc.value, 400, "ValidationException", f"1 validation error detected: {message}")
    with pytest.raises(Exception) as exc:
        unvalidated_client.put_function_event_invoke_config(
            FunctionName=fn, DestinationConfig={"OnFailure": {"Destination": bad_arn}})
    assert_aws_error(exc.value, 400, "ValidationException",
                     prefix=f"1 validation error detected: Value '{bad_arn}' at "
                            "'destinationConfig.onFailure.destination' failed to satisfy constraint: "
                            "Member must satisfy regular expression pattern: ")


def test_qualifier_must_match_the_name(lambda_client: Any, create_function: Callable[..., str]) -> None:
    fn = create_function(ECHO)
    version = lambda_client.publish_version(FunctionName=fn)["Version"]
    with pytest.raises(Exception) as exc:
        lambda_client.put_function_event_invoke_config(FunctionName=f"{fn}:{version}", Qualifier="$LATEST",
                                                       MaximumRetryAttempts=1)
    assert_aws_error(exc.value, 400, "InvalidParameterValueException",
                     "The derived qualifier from the function name does not match the specified qualifier.")


def test_targets_lamina_cannot_reach_are_refused(lambda_client: Any, create_function: Callable[..., str]) -> None:
    """This server has no LAMINA_SQS_ENDPOINT: an SQS target would never be delivered, so it is refused."""
    fn = create_function(ECHO)
    no_sqs = ("Lamina has no SQS endpoint to deliver to: start it with LAMINA_SQS_ENDPOINT set to an "
              "SQS-compatible endpoint.")
    topic = "arn:aws:sns:us-east-1:000000000000:alerts"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}}}, no_sqs),
        ({"DestinationConfig": {"OnSuccess": {"Destination": topic}}},
         "Lamina cannot deliver to sns destinations yet; use a Lamina function or an SQS queue."),
    ]
    for params, message in cases:
        with pytest.raises(Exception) as exc:
            lambda_client.put_function_event_invoke_config(FunctionName=fn, **params)
        assert_aws_error(exc.value, 400, "InvalidParameterValueException", message)

    with pytest.raises(Exception) as exc:
        lambda_client.update_function_configuration(FunctionName=fn, DeadLetterConfig={"TargetArn": QUEUE_ARN})
    assert_aws_error(exc.value, 400, "InvalidParameterValueException", no_sqs)
    with pytest.raises(Exception) as exc:
        lambda_client.update_function_configuration(FunctionName=fn, DeadLetterConfig={"TargetArn": topic})
    assert_aws_error(exc.value, 400, "InvalidParameterValueException",
                     "Lamina cannot deliver to SNS topics yet; use an SQS queue as the dead-letter queue.")
    assert "DeadLetterConfig" not in lambda_client.get_function_configuration(FunctionName=fn)
