"""Provisioned concurrency on published versions: environments initialised ahead of traffic."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROLE, LaminaServer, make_zip

SLOW_INIT = {"app.py": "import time\ntime.sleep(0.3)\ndef handler(event, context):\n    return 'ok'\n"}


def _wait_ready(client: Any, name: str, qualifier: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        config = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if config["Status"] == "READY" or time.monotonic() > deadline:
            return config
        time.sleep(0.1)


def _status(server: LaminaServer, name: str) -> dict[str, Any]:
    return dict(server.status()["functions"][f"us-east-1/{name}"])


def test_provisioned_environments_are_ready_before_the_first_invoke(
        lambda_client: Any, create_function: Callable[..., str], server: LaminaServer) -> None:
    name = create_function(SLOW_INIT)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    put = lambda_client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")

    config = _wait_ready(lambda_client, name, version)
    assert config["Status"] == "READY"
    assert config["AvailableProvisionedConcurrentExecutions"] == 2
    assert config["AllocatedProvisionedConcurrentExecutions"] == 2
    assert _status(server, name)["environments"]["provisioned"] == 2

    # the first invoke meets an initialised environment: no Init Duration, no cold start
    started = time.monotonic()
    response = lambda_client.invoke(FunctionName=name, Qualifier=version, LogType="Tail")
    assert time.monotonic() - started < 0.25  # the 0.3 s init already happened
    assert response["ExecutedVersion"] == version
    report = base64.b64decode(response["LogResult"]).decode().splitlines()[-1]
    assert report.startswith("REPORT ") and "Init Duration" not in report
    assert _status(server, name)["cold_starts"] == 0

    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [(c["FunctionArn"].rsplit(":", 1)[1], c["RequestedProvisionedConcurrentExecutions"]) for c in listed] \
        == [(version, 2)]

    delete = lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert delete["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as err:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert err.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"
    assert err.value.response["Error"]["Message"] == "No Provisioned Concurrency Config found for this function"
    assert _status(server, name)["environments"]["provisioned"] == 0


def test_provisioned_concurrency_within_reserved_concurrency(
        lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(SLOW_INIT)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with pytest.raises(ClientError) as err:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert err.value.response["Error"]["Message"] == (
        "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")


def test_provisioned_concurrency_survives_a_restart(tmp_path: Path) -> None:
    server = LaminaServer(tmp_path / "data")
    server.start()
    try:
        client = server.client()
        client.create_function(FunctionName="prov", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": make_zip(SLOW_INIT)})
        client.get_waiter("function_active_v2").wait(FunctionName="prov", WaiterConfig={"Delay": 0.1})
        version = client.publish_version(FunctionName="prov")["Version"]
        client.put_provisioned_concurrency_config(FunctionName="prov", Qualifier=version,
                                                  ProvisionedConcurrentExecutions=1)
        assert _wait_ready(client, "prov", version)["Status"] == "READY"
        server.stop()
        server.start()
        config = _wait_ready(server.client(), "prov", version)
        assert config["Status"] == "READY" and config["AvailableProvisionedConcurrentExecutions"] == 1
        assert _status(server, "prov")["environments"]["provisioned"] == 1
    finally:
        server.stop()
