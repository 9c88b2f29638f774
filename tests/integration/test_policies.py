"""Resource-based policies: AddPermission / RemovePermission / GetPolicy as AWS renders them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import ECHO, assert_aws_error, function_arn


def test_add_get_remove(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    arn = function_arn(name)
    added = lambda_client.add_permission(
        FunctionName=name, StatementId="s3-invoke", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::my-bucket", SourceAccount="123456789012")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "s3-invoke", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": arn,
        "Condition": {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                      "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}},
    }
    lambda_client.add_permission(FunctionName=name, StatementId="acct", Action="lambda:GetFunction",
                                 Principal="111122223333")
    got = lambda_client.get_policy(FunctionName=name)
    policy = json.loads(got["Policy"])
    assert policy["Version"] == "2012-10-17" and policy["Id"] == "default"
    assert [s["Sid"] for s in policy["Statement"]] == ["s3-invoke", "acct"]
    assert policy["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}

    with pytest.raises(ClientError) as err:
        lambda_client.remove_permission(FunctionName=name, StatementId="acct", RevisionId="wrong")
    assert_aws_error(err.value, 412, "PreconditionFailedException",
                     "The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetPolicy API to retrieve the latest Revision Id")
    removed = lambda_client.remove_permission(FunctionName=name, StatementId="acct", RevisionId=got["RevisionId"])
    assert removed["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [s["Sid"] for s in json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])["Statement"]] \
        == ["s3-invoke"]


def test_policy_errors(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as err:
        lambda_client.get_policy(FunctionName=name)
    assert_aws_error(err.value, 404, "ResourceNotFoundException", "No policy is associated with the given resource.")
    lambda_client.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                                 Principal="*")
    with pytest.raises(ClientError) as err:
        lambda_client.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                                     Principal="*")
    assert_aws_error(err.value, 409, "ResourceConflictException",
                     "The statement id (s3) provided already exists. Please provide a new statement id, or remove "
                     "the existing statement.")
    with pytest.raises(ClientError) as err:
        lambda_client.add_permission(FunctionName=name, StatementId="x", Action="lambda:InvokeFunction",
                                     Principal="*", Qualifier="$LATEST")
    assert_aws_error(err.value, 400, "InvalidParameterValueException",
                     "We currently do not support adding policies for $LATEST.")
    with pytest.raises(ClientError) as err:
        lambda_client.add_permission(FunctionName=name, StatementId="y", Action="lambda:InvokeFunction",
                                     Principal="not-a-principal")
    assert_aws_error(err.value, 400, "InvalidParameterValueException",
                     "The provided principal was invalid. Please check the principal and try again.")
    with pytest.raises(ClientError) as err:
        lambda_client.remove_permission(FunctionName=name, StatementId="non-existent")
    assert_aws_error(err.value, 404, "ResourceNotFoundException",
                     "Statement non-existent is not found in resource policy.")
    with pytest.raises(ClientError) as err:
        lambda_client.add_permission(FunctionName=name, StatementId="z", Action="lambda:InvokeFunction",
                                     Principal="*", Qualifier="42")
    assert_aws_error(err.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(name)}:42")


def test_policies_per_version_and_alias(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for qualifier in ("1", "live"):
        lambda_client.add_permission(FunctionName=name, StatementId=f"on-{qualifier}",
                                     Action="lambda:InvokeFunction", Principal="*", Qualifier=qualifier)
        statements = json.loads(lambda_client.get_policy(FunctionName=name, Qualifier=qualifier)["Policy"])["Statement"]
        expected = [(f"on-{qualifier}", f"{function_arn(name)}:{qualifier}")]
        assert [(s["Sid"], s["Resource"]) for s in statements] == expected
    with pytest.raises(ClientError):
        lambda_client.get_policy(FunctionName=name)  # the function's own policy is separate
