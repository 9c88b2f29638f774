"""The AWS CLI, unchanged, against Lamina: `aws --endpoint-url URL lambda …` end to end."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    ROLE,
    LaminaServer,
    code_sha256,
    function_arn,
    make_zip,
    versioned_handler,
)

AWS = Path(sys.executable).with_name("aws")


@pytest.fixture(scope="module")
def raw_payload() -> list[str]:
    """How to pass `--payload` as raw JSON: CLI v2 needs `--cli-binary-format raw-in-base64-out`;
    v1 (what `make setup` installs) sends blobs raw already and does not know the option."""
    version = subprocess.run([str(AWS), "--version"], capture_output=True, text=True, timeout=60)
    text = version.stdout + version.stderr
    return [] if text.startswith("aws-cli/1.") else ["--cli-binary-format", "raw-in-base64-out"]


@pytest.fixture
def aws(server: LaminaServer, tmp_path: Path) -> Callable[..., Any]:
    """Run `aws lambda …` with test credentials and no config files; returns parsed JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="")

    def run(*args: str, expect_ok: bool = True) -> Any:
        proc = subprocess.run([str(AWS), "--endpoint-url", server.url, "--output", "json", "lambda", *args],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        if expect_ok:
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc
    return run


def test_cli_function_lifecycle(aws: Callable[..., Any], tmp_path: Path, raw_payload: list[str]) -> None:
    name = f"cli-{os.urandom(4).hex()}"
    package = tmp_path / "function.zip"
    v1 = make_zip({"app.py": (
        "def handler(event, context):\n"
        "    print('hello from the cli test')\n"
        "    return {'got': event, 'version': 'v1'}\n")})
    package.write_bytes(v1)
    try:
        created = aws("create-function", "--function-name", name, "--runtime", "python3.11",
                      "--handler", "app.handler", "--role", ROLE, "--zip-file", f"fileb://{package}")
        assert created["FunctionArn"] == function_arn(name)
        assert created["State"] == "Pending"
        assert created["CodeSha256"] == code_sha256(v1)

        aws("wait", "function-active-v2", "--function-name", name)

        got = aws("get-function", "--function-name", name)
        assert got["Configuration"]["State"] == "Active"
        assert got["Code"]["RepositoryType"] == "S3"

        out = tmp_path / "out.json"
        invoked = aws("invoke", "--function-name", name, "--payload", '{"a":1}', *raw_payload,
                      "--log-type", "Tail", str(out))
        assert invoked["StatusCode"] == 200
        assert "FunctionError" not in invoked
        assert invoked["ExecutedVersion"] == "$LATEST"
        assert json.loads(out.read_text()) == {"got": {"a": 1}, "version": "v1"}
        log_tail = base64.b64decode(invoked["LogResult"]).decode()
        assert "hello from the cli test" in log_tail
        assert "START RequestId: " in log_tail
        assert "END RequestId: " in log_tail
        assert "REPORT RequestId: " in log_tail

        v2 = make_zip(versioned_handler("v2"))
        package.write_bytes(v2)
        updated = aws("update-function-code", "--function-name", name, "--zip-file", f"fileb://{package}")
        assert updated["LastUpdateStatus"] == "InProgress"
        assert updated["CodeSha256"] == code_sha256(v2)
        aws("wait", "function-updated-v2", "--function-name", name)

        configured = aws("update-function-configuration", "--function-name", name, "--memory-size", "256",
                         "--timeout", "20", "--description", "from the cli",
                         "--environment", "Variables={COLOUR=green}")
        assert configured["MemorySize"] == 256
        assert configured["Environment"] == {"Variables": {"COLOUR": "green"}}
        aws("wait", "function-updated-v2", "--function-name", name)

        invoked = aws("invoke", "--function-name", name, "--payload", '{"env":["COLOUR"]}', *raw_payload,
                      str(out))
        assert invoked["StatusCode"] == 200
        result = json.loads(out.read_text())
        assert result["version"] == "v2"
        assert result["env"] == {"COLOUR": "green"}
        assert result["memory"] == 256

        config = aws("get-function-configuration", "--function-name", name)
        assert config["Description"] == "from the cli"
        assert config["Timeout"] == 20
        assert config["LastUpdateStatus"] == "Successful"
    finally:
        aws("delete-function", "--function-name", name, expect_ok=False)

    missing = aws("get-function", "--function-name", name, expect_ok=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
    assert f"Function not found: {function_arn(name)}" in missing.stderr


def test_cli_list_functions_paginates(aws: Callable[..., Any], tmp_path: Path) -> None:
    prefix = f"cli-list-{os.urandom(4).hex()}"
    package = tmp_path / "function.zip"
    package.write_bytes(make_zip({"app.py": "def handler(event, context):\n    return event\n"}))
    names = [f"{prefix}-{i}" for i in range(3)]
    try:
        for name in names:
            aws("create-function", "--function-name", name, "--runtime", "python3.11", "--handler",
                "app.handler", "--role", ROLE, "--zip-file", f"fileb://{package}")

        # The CLI follows NextMarker itself; a small page size makes it take several pages.
        everything = aws("list-functions", "--page-size", "1")
        listed = [f["FunctionName"] for f in everything["Functions"]]
        assert set(names) <= set(listed)
        assert len(listed) == len(set(listed))

        # --max-items stops early and hands back a token to continue from.
        first = aws("list-functions", "--max-items", "1")
        assert len(first["Functions"]) == 1
        assert first.get("NextToken")
        collected = [f["FunctionName"] for f in first["Functions"]]
        token = first["NextToken"]
        for _ in range(1000):
            page = aws("list-functions", "--max-items", "2", "--starting-token", token)
            collected += [f["FunctionName"] for f in page["Functions"]]
            token = page.get("NextToken")
            if not token:
                break
        assert sorted(collected) == sorted(listed)
    finally:
        for name in names:
            aws("delete-function", "--function-name", name, expect_ok=False)


def test_cli_versions_aliases_layers_tags_policies_concurrency(aws: Callable[..., Any], tmp_path: Path) -> None:
    """Every operation added after the core, once, through the AWS CLI."""
    name = f"cli-more-{os.urandom(4).hex()}"
    layer_zip = tmp_path / "layer.zip"
    layer_zip.write_bytes(make_zip({"python/helper.py": "WORD = 'from-layer'\n"}))
    layer = aws("publish-layer-version", "--layer-name", name, "--zip-file", f"fileb://{layer_zip}",
                "--compatible-runtimes", "python3.11")
    assert layer["Version"] == 1
    assert aws("get-layer-version", "--layer-name", name, "--version-number", "1")["LayerVersionArn"] \
        == layer["LayerVersionArn"]
    assert [v["Version"] for v in aws("list-layer-versions", "--layer-name", name)["LayerVersions"]] == [1]
    assert name in [item["LayerName"] for item in aws("list-layers")["Layers"]]
    aws("add-layer-version-permission", "--layer-name", name, "--version-number", "1", "--statement-id", "all",
        "--action", "lambda:GetLayerVersion", "--principal", "*")
    assert "all" in aws("get-layer-version-policy", "--layer-name", name, "--version-number", "1")["Policy"]

    package = tmp_path / "function.zip"
    package.write_bytes(make_zip({"app.py": "import helper\ndef handler(e, c):\n    return helper.WORD\n"}))
    aws("create-function", "--function-name", name, "--runtime", "python3.11", "--handler", "app.handler",
        "--role", ROLE, "--zip-file", f"fileb://{package}", "--layers", layer["LayerVersionArn"],
        "--tags", "team=core")
    aws("wait", "function-active-v2", "--function-name", name)
    version = aws("publish-version", "--function-name", name, "--description", "first")
    assert version["Version"] == "1"
    assert [v["Version"] for v in aws("list-versions-by-function", "--function-name", name)["Versions"]] \
        == ["$LATEST", "1"]
    alias = aws("create-alias", "--function-name", name, "--name", "live", "--function-version", "1")
    assert alias["AliasArn"] == f"{function_arn(name)}:live"
    aws("update-alias", "--function-name", name, "--name", "live", "--description", "prod")
    assert aws("get-alias", "--function-name", name, "--name", "live")["Description"] == "prod"
    assert [a["Name"] for a in aws("list-aliases", "--function-name", name)["Aliases"]] == ["live"]
    out = tmp_path / "out.json"
    result = aws("invoke", "--function-name", name, "--qualifier", "live", str(out))
    assert result["ExecutedVersion"] == "1" and json.loads(out.read_text()) == "from-layer"

    aws("tag-resource", "--resource", function_arn(name), "--tags", "env=dev")
    assert aws("list-tags", "--resource", function_arn(name))["Tags"] == {"team": "core", "env": "dev"}
    aws("untag-resource", "--resource", function_arn(name), "--tag-keys", "team")
    aws("add-permission", "--function-name", name, "--statement-id", "s3", "--action", "lambda:InvokeFunction",
        "--principal", "s3.amazonaws.com")
    assert json.loads(aws("get-policy", "--function-name", name)["Policy"])["Statement"][0]["Sid"] == "s3"
    aws("remove-permission", "--function-name", name, "--statement-id", "s3")

    aws("put-function-concurrency", "--function-name", name, "--reserved-concurrent-executions", "5")
    assert aws("get-function-concurrency", "--function-name", name)["ReservedConcurrentExecutions"] == 5
    aws("delete-function-concurrency", "--function-name", name)
    aws("put-provisioned-concurrency-config", "--function-name", name, "--qualifier", "live",
        "--provisioned-concurrent-executions", "1")
    assert aws("list-provisioned-concurrency-configs", "--function-name", name)["ProvisionedConcurrencyConfigs"]
    aws("delete-provisioned-concurrency-config", "--function-name", name, "--qualifier", "live")
    aws("delete-alias", "--function-name", name, "--name", "live")
    aws("delete-function", "--function-name", name, "--qualifier", "1")
    aws("delete-function", "--function-name", name)
    aws("delete-layer-version", "--layer-name", name, "--version-number", "1")
