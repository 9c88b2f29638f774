"""A restart loses nothing that was acknowledged: functions, their code and their updates.

Uses its own server on its own data dir, so stopping it does not disturb other tests.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    FAST_WAIT,
    ROLE,
    LaminaServer,
    code_sha256,
    function_arn,
    invoke_json,
    make_zip,
    versioned_handler,
)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


def _create(client: Any, name: str, zip_bytes: bytes, **kwargs: Any) -> None:
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": zip_bytes}, **kwargs)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)


def test_functions_survive_a_restart(own_server: LaminaServer) -> None:
    client = own_server.client()
    kept_zip = make_zip(versioned_handler("kept"))
    _create(client, "kept", kept_zip, MemorySize=256, Environment={"Variables": {"COLOUR": "red"}})
    _, before = invoke_json(client, "kept", {"env": ["COLOUR"]})
    assert before["version"] == "kept"

    _create(client, "updated", make_zip(versioned_handler("v1")))
    new_zip = make_zip(versioned_handler("v2"))
    client.update_function_code(FunctionName="updated", ZipFile=new_zip)
    client.get_waiter("function_updated_v2").wait(FunctionName="updated", WaiterConfig=FAST_WAIT)
    client.update_function_configuration(FunctionName="updated", Timeout=15, Description="after update")
    client.get_waiter("function_updated_v2").wait(FunctionName="updated", WaiterConfig=FAST_WAIT)

    _create(client, "deleted", make_zip(versioned_handler("gone")))
    client.delete_function(FunctionName="deleted")

    configs_before = {name: client.get_function_configuration(FunctionName=name)
                      for name in ("kept", "updated")}

    own_server.stop()
    own_server.start()
    client = own_server.client()

    kept = client.get_function(FunctionName="kept")["Configuration"]
    assert kept["State"] == "Active"
    assert kept["FunctionArn"] == function_arn("kept")
    assert kept["CodeSha256"] == code_sha256(kept_zip)
    assert kept["MemorySize"] == 256
    assert kept["Environment"] == {"Variables": {"COLOUR": "red"}}
    _, after = invoke_json(client, "kept", {"env": ["COLOUR"]})
    assert after == {**before, "remaining_ms": after["remaining_ms"]}

    updated = client.get_function(FunctionName="updated")["Configuration"]
    assert updated["State"] == "Active"
    assert updated["LastUpdateStatus"] == "Successful"
    assert updated["CodeSha256"] == code_sha256(new_zip)
    assert updated["Timeout"] == 15
    assert updated["Description"] == "after update"
    _, result = invoke_json(client, "updated")
    assert result["version"] == "v2"

    for name, config in configs_before.items():
        now = client.get_function_configuration(FunctionName=name)
        for key in ("RevisionId", "LastModified", "CodeSha256", "CodeSize", "Handler", "Runtime"):
            assert now[key] == config[key], (name, key)

    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="deleted")
    listed = {f["FunctionName"] for f in client.get_paginator("list_functions").paginate()
              .build_full_result()["Functions"]}
    assert listed == {"kept", "updated"}

    # The code location still serves the package after the restart.
    location = client.get_function(FunctionName="kept")["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=30) as r:
        assert r.read() == kept_zip


def test_functions_created_after_a_restart_work(own_server: LaminaServer) -> None:
    client = own_server.client()
    _create(client, "first", make_zip(versioned_handler("first")))
    own_server.stop()
    own_server.start()
    client = own_server.client()
    _create(client, "second", make_zip(versioned_handler("second")))
    assert invoke_json(client, "first")[1]["version"] == "first"
    assert invoke_json(client, "second")[1]["version"] == "second"
    settings = client.get_account_settings()["AccountUsage"]
    assert settings["FunctionCount"] == 2


def test_environment_values_are_encrypted_at_rest(tmp_path: Path) -> None:
    """An environment variable's value appears nowhere under the data dir in plain text,
    yet GetFunction and the function itself see it, also after a restart."""
    secret = "s3cr3t-" + uuid.uuid4().hex
    server = LaminaServer(tmp_path / "data")
    server.start()
    try:
        client = server.client()
        client.create_function(
            FunctionName="enc", Runtime="python3.11", Handler="app.handler", Role=ROLE,
            Code={"ZipFile": make_zip({"app.py": "import os\ndef handler(e, c):\n    return os.environ['TOKEN']\n"})},
            Environment={"Variables": {"TOKEN": secret}},
            KMSKeyArn="arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        client.get_waiter("function_active_v2").wait(FunctionName="enc", WaiterConfig={"Delay": 0.1})
        client.publish_version(FunctionName="enc")
        config = client.get_function_configuration(FunctionName="enc")
        assert config["Environment"]["Variables"]["TOKEN"] == secret
        assert config["KMSKeyArn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")
        server.stop()
        for path in (tmp_path / "data").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{path} holds the value in plain text"
        server.start()
        client = server.client()
        assert json.loads(client.invoke(FunctionName="enc", Qualifier="1")["Payload"].read()) == secret
    finally:
        server.stop()


def test_layer_version_numbers_are_not_reused_after_a_restart(own_server: LaminaServer) -> None:
    """The newest version deleted, then a restart: the next one still gets a new number."""
    client = own_server.client()
    name = f"libs-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        client.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"python/m.py": "X = 1\n"})})
    client.delete_layer_version(LayerName=name, VersionNumber=2)
    own_server.stop()
    own_server.start()
    client = own_server.client()
    published = client.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"python/m.py": "X = 3\n"})})
    assert published["Version"] == 3
    assert [v["Version"] for v in client.list_layer_versions(LayerName=name)["LayerVersions"]] == [3, 1]
