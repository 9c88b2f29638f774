"""Layers: publish, list, get, delete; functions merging up to five layers under /opt."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import interpreters
from tests.integration.conftest import assert_aws_error, make_zip


@pytest.fixture
def publish(lambda_client: Any) -> Callable[..., dict[str, Any]]:
    def make(files: dict[str, str | bytes], name: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return dict(lambda_client.publish_layer_version(
            LayerName=name or f"layer-{uuid.uuid4().hex[:8]}", Content={"ZipFile": make_zip(files)}, **kwargs))
    return make


def _invoke(client: Any, name: str) -> Any:
    response = client.invoke(FunctionName=name)
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def test_layer_version_lifecycle(lambda_client: Any, publish: Callable[..., dict[str, Any]]) -> None:
    name = f"libs-{uuid.uuid4().hex[:8]}"
    zip_bytes = make_zip({"python/mod.py": "X = 1\n"})
    first = publish({"python/mod.py": "X = 1\n"}, name=name, CompatibleRuntimes=["python3.11"],
                    Description="first", LicenseInfo="MIT")
    assert first["Version"] == 1
    assert first["LayerArn"] == f"arn:aws:lambda:us-east-1:000000000000:layer:{name}"
    assert first["LayerVersionArn"] == f"{first['LayerArn']}:1"
    assert first["Content"]["CodeSize"] == len(zip_bytes)
    with urllib.request.urlopen(first["Content"]["Location"]) as response:
        assert response.read() == zip_bytes
    second = publish({"python/mod.py": "X = 2\n"}, name=name)
    assert second["Version"] == 2

    got = lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert (got["Description"], got["LicenseInfo"], got["CompatibleRuntimes"]) == ("first", "MIT", ["python3.11"])
    assert lambda_client.get_layer_version_by_arn(Arn=second["LayerVersionArn"])["Version"] == 2
    listed = lambda_client.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in listed] == [2, 1]
    assert [v["Version"] for v in
            lambda_client.list_layer_versions(LayerName=name, CompatibleRuntime="python3.11")["LayerVersions"]] == [1]
    layers = {item["LayerName"]: item for item in lambda_client.list_layers()["Layers"]}
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2

    lambda_client.delete_layer_version(LayerName=name, VersionNumber=2)
    with pytest.raises(ClientError) as err:
        lambda_client.get_layer_version(LayerName=name, VersionNumber=2)
    assert_aws_error(err.value, 404, "ResourceNotFoundException",
                     f"Layer version {first['LayerArn']}:2 does not exist.")
    assert publish({"python/mod.py": "X = 3\n"}, name=name)["Version"] == 3  # numbers are not reused


def test_python_function_imports_from_layers_in_order(
        lambda_client: Any, create_function: Callable[..., str], publish: Callable[..., dict[str, Any]]) -> None:
    base = publish({"python/shared.py": "WHO = 'base'\n", "python/only_base.py": "X = 1\n",
                    "python/lib/python3.11/site-packages/deep.py": "D = 'site'\n"})
    top = publish({"python/shared.py": "WHO = 'top'\n"})
    name = create_function(
        {"app.py": "import shared, only_base, deep\n"
                   "def handler(event, context):\n    return [shared.WHO, only_base.X, deep.D]\n"},
        Layers=[base["LayerVersionArn"], top["LayerVersionArn"]])
    assert _invoke(lambda_client, name) == ["top", 1, "site"]
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert [layer["Arn"] for layer in config["Layers"]] == [base["LayerVersionArn"], top["LayerVersionArn"]]


def test_node_function_requires_from_a_layer(
        lambda_client: Any, create_function: Callable[..., str], publish: Callable[..., dict[str, Any]]) -> None:
    layer = publish({"nodejs/node_modules/greet/index.js": "module.exports = (n) => `hello ${n}`;\n"})
    name = create_function(
        {"index.js": "const greet = require('greet');\nexports.handler = async () => greet('layer');\n"},
        runtime="nodejs20.x", handler="index.handler", Layers=[layer["LayerVersionArn"]])
    assert _invoke(lambda_client, name) == "hello layer"


def test_custom_runtime_bootstrap_from_a_layer(
        lambda_client: Any, create_function: Callable[..., str], publish: Callable[..., dict[str, Any]],
        python_layer: str) -> None:
    bootstrap = (
        f"#!{interpreters.PYTHON}\n"
        "import os, urllib.request\n"
        "api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'\n"
        "while True:\n"
        "    r = urllib.request.urlopen(api + 'next')\n"
        "    rid = r.headers['Lambda-Runtime-Aws-Request-Id']\n"
        "    r.read()\n"
        "    urllib.request.urlopen(urllib.request.Request(api + rid + '/response', data=b'\"from /opt\"',\n"
        "                                                  method='POST')).read()\n")
    layer = publish({"bootstrap": bootstrap})
    name = create_function({"README": "code without a bootstrap"}, runtime="provided.al2023",
                           handler="unused", Layers=[python_layer, layer["LayerVersionArn"]])
    assert _invoke(lambda_client, name) == "from /opt"


def test_layer_errors(lambda_client: Any, create_function: Callable[..., str],
                      publish: Callable[..., dict[str, Any]]) -> None:
    name = create_function({"app.py": "def handler(e, c):\n    return 1\n"})
    one = publish({"a.txt": "a"}, name=f"dup-{uuid.uuid4().hex[:8]}")
    two = publish({"a.txt": "b"}, name=one["LayerArn"].rsplit(":", 1)[1])
    cases = [
        ([f"{one['LayerArn']}:9"], f"Layer version {one['LayerArn']}:9 does not exist."),
        ([one["LayerVersionArn"], two["LayerVersionArn"]],
         "Two different versions of the same layer are not allowed to be referenced in the same function. "
         f"{one['LayerVersionArn']} and {two['LayerVersionArn']} are versions of the same layer."),
        ([publish({"x": str(i)})["LayerVersionArn"] for i in range(6)], "Cannot reference more than 5 layers."),
        ([one["LayerVersionArn"].replace("us-east-1", "eu-west-1")],
         "Layers are not in the same region as the function. Layers are expected to be in region us-east-1."),
    ]
    for layers, message in cases:
        with pytest.raises(ClientError) as err:
            lambda_client.update_function_configuration(FunctionName=name, Layers=layers)
        assert_aws_error(err.value, 400, "InvalidParameterValueException", message)


def test_layer_version_policy(lambda_client: Any, publish: Callable[..., dict[str, Any]]) -> None:
    layer = publish({"a.txt": "a"})
    name, version = layer["LayerArn"].rsplit(":", 1)[1], layer["Version"]
    with pytest.raises(ClientError) as err:
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=version)
    assert_aws_error(err.value, 404, "ResourceNotFoundException", "No policy is associated with the given resource.")
    added = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=version, StatementId="org", Action="lambda:GetLayerVersion",
        Principal="*", OrganizationId="o-1234567890")
    assert json.loads(added["Statement"]) == {
        "Sid": "org", "Effect": "Allow", "Principal": "*", "Action": "lambda:GetLayerVersion",
        "Resource": layer["LayerVersionArn"], "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1234567890"}}}
    with pytest.raises(ClientError) as err:
        lambda_client.add_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="org",
                                                    Action="lambda:GetLayerVersion", Principal="*")
    assert_aws_error(err.value, 409, "ResourceConflictException",
                     "The statement id (org) provided already exists. Please provide a new statement id, or remove "
                     "the existing statement.")
    got = lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=version)
    assert got["RevisionId"] == added["RevisionId"]
    assert [s["Sid"] for s in json.loads(got["Policy"])["Statement"]] == ["org"]
    with pytest.raises(ClientError) as err:
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="org",
                                                      RevisionId="stale")
    assert_aws_error(err.value, 412, "PreconditionFailedException",
                     "The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetLayerPolicy API to retrieve the latest Revision Id")
    with pytest.raises(ClientError) as err:
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=version,
                                                      StatementId="doesnotexist")
    assert_aws_error(err.value, 404, "ResourceNotFoundException",
                     "Statement doesnotexist is not found in resource policy.")
    lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="org")
