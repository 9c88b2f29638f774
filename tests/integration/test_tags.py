"""Tags on functions: at CreateFunction, TagResource / UntagResource / ListTags, AWS's limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import ECHO, assert_aws_error, function_arn


def test_tags_round_trip(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO, Tags={"team": "core", "env": "dev"})
    arn = function_arn(name)
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "dev"}
    assert lambda_client.get_function(FunctionName=name)["Tags"] == {"team": "core", "env": "dev"}

    response = lambda_client.tag_resource(Resource=arn, Tags={"env": "prod", "owner": "ana"})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "prod", "owner": "ana"}

    response = lambda_client.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"env": "prod", "owner": "ana"}


def test_no_tags_on_versions_or_aliases(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    lambda_client.publish_version(FunctionName=name)
    for qualifier in ("1", "$LATEST"):
        with pytest.raises(ClientError) as err:
            lambda_client.tag_resource(Resource=f"{function_arn(name)}:{qualifier}", Tags={"a": "b"})
        assert_aws_error(err.value, 400, "InvalidParameterValueException",
                         "Tags on function aliases and versions are not supported. Please specify a function ARN.")


def test_tag_limit(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO, Tags={f"k{i}": "v" for i in range(45)})
    with pytest.raises(ClientError) as err:
        lambda_client.tag_resource(Resource=function_arn(name), Tags={f"n{i}": "v" for i in range(6)})
    assert_aws_error(err.value, 400, "InvalidParameterValueException", "Number of tags exceeds resource tag limit.")
    assert len(lambda_client.list_tags(Resource=function_arn(name))["Tags"]) == 45


def test_tags_of_unknown_function(lambda_client: Any) -> None:
    arn = function_arn("doesnotexist")
    with pytest.raises(ClientError) as err:
        lambda_client.list_tags(Resource=arn)
    assert_aws_error(err.value, 404, "ResourceNotFoundException", f"Function not found: {arn}")
