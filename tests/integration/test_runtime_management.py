"""Runtime versions and runtime management, and AWS's runtime lifecycle, against a real server.

- Every function configuration Create, Get, Update and PublishVersion answer carries
  `RuntimeVersionConfig.RuntimeVersionArn` (AWS's lists leave it out; recorded from AWS).
- Get/PutRuntimeManagementConfig: modes, AWS's validation, per-version settings, publish
  copies $LATEST's, a restart loses nothing, the AWS CLI works unchanged.
- Lifecycle: a server told the date (`LAMINA_RUNTIME_LIFECYCLE_DATE`) refuses CreateFunction
  past a runtime's block-create date and updates past its block-update date with AWS's
  error, and still invokes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import (
    ECHO,
    FAST_WAIT,
    REGION,
    ROLE,
    LaminaServer,
    assert_aws_error,
    function_arn,
    invoke_json,
    make_zip,
)

RUNTIME_VERSION_ARN = re.compile(r"arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}")
AWS = Path(sys.executable).with_name("aws")


def no_longer_supported(runtime: str) -> str:
    return (f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions.")


def _version_arn(config: dict[str, Any]) -> str:
    arn: str = config["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert RUNTIME_VERSION_ARN.fullmatch(arn), arn
    return arn


def _rmc(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


# --- RuntimeVersionConfig in function configurations ---------------------------------------------------

def test_every_configuration_names_its_runtime_version(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str],
        wait_active: Callable[[str], None], wait_updated: Callable[[str], None]) -> None:
    name = unique_name("rv")
    cleanup_functions.append(name)
    created = lambda_client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                                            Role=ROLE, Code={"ZipFile": make_zip(ECHO)})
    arn = _version_arn(created)  # already while Pending, as AWS answers
    wait_active(name)
    assert _version_arn(lambda_client.get_function(FunctionName=name)["Configuration"]) == arn
    assert _version_arn(lambda_client.get_function_configuration(FunctionName=name)) == arn
    updated = lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    assert _version_arn(updated) == arn
    wait_updated(name)
    code = lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(ECHO | {"extra.py": "x = 1\n"}))
    assert _version_arn(code) == arn
    wait_updated(name)
    published = lambda_client.publish_version(FunctionName=name)
    assert _version_arn(published) == arn
    assert _version_arn(lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")) == arn

    # AWS's lists leave it out (recorded: test_list_functions, test_version_lifecycle)
    listed = [f for f in lambda_client.list_functions()["Functions"] if f["FunctionName"] == name]
    assert listed and "RuntimeVersionConfig" not in listed[0]
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    assert all("RuntimeVersionConfig" not in v for v in versions)


def test_runtime_version_arns_differ_by_runtime(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    arns = {}
    for runtime in ("python3.11", "python3.12"):  # 3.12 may be served by another image: an ARN of its own
        name = unique_name("rv-" + runtime.replace(".", ""))
        cleanup_functions.append(name)
        arns[runtime] = _version_arn(lambda_client.create_function(
            FunctionName=name, Runtime=runtime, Handler="app.handler", Role=ROLE, Code={"ZipFile": make_zip(ECHO)}))
    assert arns["python3.11"] != arns["python3.12"]


# --- Get/PutRuntimeManagementConfig ----------------------------------------------------------------------

def test_a_new_function_updates_its_runtime_automatically(
        lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    assert _rmc(lambda_client.get_runtime_management_config(FunctionName=name)) == {
        "UpdateRuntimeOn": "Auto", "FunctionArn": function_arn(name)}
    assert _rmc(lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="$LATEST")) == {
        "UpdateRuntimeOn": "Auto", "FunctionArn": function_arn(name) + ":$LATEST"}


def test_manual_pins_the_runtime_version(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    before = lambda_client.get_function_configuration(FunctionName=name)
    arn = _version_arn(before)
    put = lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual",
                                                      RuntimeVersionArn=arn)
    expected = {"UpdateRuntimeOn": "Manual", "FunctionArn": function_arn(name), "RuntimeVersionArn": arn}
    assert _rmc(put) == expected
    assert _rmc(lambda_client.get_runtime_management_config(FunctionName=name)) == expected
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert _version_arn(after) == arn
    assert after["RevisionId"] != before["RevisionId"]  # a change like any other: RevisionIds guard it
    # a pinned function still runs, and keeps its pin across a code update
    assert invoke_json(lambda_client, name, {"pinned": True})[1] == {"pinned": True}
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip(ECHO | {"more.py": ""}))
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    assert _version_arn(lambda_client.get_function_configuration(FunctionName=name)) == arn
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "Manual"


@pytest.mark.parametrize("mode", ["FunctionUpdate", "Auto"])
def test_other_modes_answer_no_runtime_version(lambda_client: Any, create_function: Callable[..., str],
                                               mode: str) -> None:
    name = create_function(ECHO)
    arn = _version_arn(lambda_client.get_function_configuration(FunctionName=name))
    lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual", RuntimeVersionArn=arn)
    put = lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn=mode)
    assert _rmc(put) == {"UpdateRuntimeOn": mode, "FunctionArn": function_arn(name)}
    assert _rmc(lambda_client.get_runtime_management_config(FunctionName=name)) == {
        "UpdateRuntimeOn": mode, "FunctionArn": function_arn(name)}
    assert _version_arn(lambda_client.get_function_configuration(FunctionName=name)) == arn


def test_each_version_has_its_own_setting(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    arn = _version_arn(lambda_client.get_function_configuration(FunctionName=name))
    lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual", RuntimeVersionArn=arn)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"
    # the published version keeps what $LATEST had when it was published
    assert _rmc(lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="1")) == {
        "UpdateRuntimeOn": "Manual", "FunctionArn": function_arn(name) + ":1", "RuntimeVersionArn": arn}
    put = lambda_client.put_runtime_management_config(FunctionName=name, Qualifier="1",
                                                      UpdateRuntimeOn="FunctionUpdate")
    assert _rmc(put) == {"UpdateRuntimeOn": "FunctionUpdate", "FunctionArn": function_arn(name) + ":1"}
    assert lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="1")[
        "UpdateRuntimeOn"] == "FunctionUpdate"
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "Manual"
    # the version's own ARN form works too
    by_arn = lambda_client.get_runtime_management_config(FunctionName=function_arn(name) + ":1")
    assert by_arn["UpdateRuntimeOn"] == "FunctionUpdate"
    assert invoke_json(lambda_client, name, {"v": 1}, Qualifier="1")[1] == {"v": 1}


def test_manual_needs_a_runtime_version(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual")
    assert_aws_error(e.value, 400, "InvalidParameterValueException",
                     "RuntimeVersionArn must be specified when UpdateRuntimeOn is Manual.")


def test_a_runtime_version_only_goes_with_manual(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    arn = _version_arn(lambda_client.get_function_configuration(FunctionName=name))
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Auto", RuntimeVersionArn=arn)
    assert_aws_error(e.value, 400, "InvalidParameterValueException",
                     "RuntimeVersionArn can only be specified when UpdateRuntimeOn is Manual, not Auto.")
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "Auto"


def test_manual_refuses_runtime_versions_this_host_cannot_run(
        lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    arn = _version_arn(lambda_client.get_function_configuration(FunctionName=name))
    unknown = "arn:aws:lambda:us-east-1::runtime:" + "0" * 64
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual",
                                                    RuntimeVersionArn=unknown)
    assert_aws_error(e.value, 400, "InvalidParameterValueException",
                     f"The runtime version {unknown} is not a version of the python3.11 runtime that this Lamina "
                     "host can run.")
    elsewhere = arn.replace("us-east-1", "eu-west-1")
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual",
                                                    RuntimeVersionArn=elsewhere)
    assert_aws_error(e.value, 400, "InvalidParameterValueException",
                     f"The runtime version {elsewhere} is not in the function's Region (us-east-1).")


def test_model_constraints(unvalidated_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        unvalidated_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Sometimes")
    assert_aws_error(e.value, 400, "ValidationException",
                     "1 validation error detected: Value 'Sometimes' at 'updateRuntimeOn' failed to satisfy "
                     "constraint: Member must satisfy enum value set: [Auto, Manual, FunctionUpdate]")
    not_an_arn = "python3.11:version-1-is-not-an-arn-at-all"
    with pytest.raises(ClientError) as e:
        unvalidated_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual",
                                                         RuntimeVersionArn=not_an_arn)
    assert_aws_error(e.value, 400, "ValidationException",
                     prefix=f"1 validation error detected: Value '{not_an_arn}' at 'runtimeVersionArn' "
                            "failed to satisfy constraint: Member must satisfy regular expression pattern: ")


def test_aliases_are_refused(lambda_client: Any, create_function: Callable[..., str]) -> None:
    name = create_function(ECHO)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    message = f"The provided function name {function_arn(name)}:live is invalid. Aliases are not allowed."
    with pytest.raises(ClientError) as e:
        lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="live")
    assert_aws_error(e.value, 400, "InvalidParameterValueException", message)
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=f"{name}:live", UpdateRuntimeOn="FunctionUpdate")
    assert_aws_error(e.value, 400, "InvalidParameterValueException", message)


def test_unknown_functions_and_versions(lambda_client: Any, create_function: Callable[..., str]) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as e:
        lambda_client.get_runtime_management_config(FunctionName=missing)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(missing)}")
    with pytest.raises(ClientError) as e:
        lambda_client.put_runtime_management_config(FunctionName=missing, UpdateRuntimeOn="Auto")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(missing)}")
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="7")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Function not found: {function_arn(name)}:7")


def test_latest_is_refused_while_pending(
        lambda_client: Any, unique_name: Callable[[str], str], cleanup_functions: list[str]) -> None:
    name = unique_name("rv-pending")
    cleanup_functions.append(name)
    # a package that takes seconds to unpack and compile keeps the function Pending meanwhile
    bulky = make_zip(ECHO | {f"data/{i}.bin": os.urandom(1 << 20) for i in range(12)}
                     | {f"mods/m{i}.py": "".join(f"def f{j}(x):\n    return x + {j}\n" for j in range(200))
                        for i in range(1500)})
    created = lambda_client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler",
                                            Role=ROLE, Code={"ZipFile": bulky})
    try:
        lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual",
                                                    RuntimeVersionArn=_version_arn(created))
    except ClientError as exc:
        assert_aws_error(exc, 409, "ResourceConflictException",
                         "The operation cannot be performed at this time. The function is currently in the following "
                         "state: Pending")
    else:
        pytest.fail("the function settled before the request could be made")


def test_the_aws_cli_reads_and_writes_it(server: LaminaServer, create_function: Callable[..., str],
                                         tmp_path: Path) -> None:
    name = create_function(ECHO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=REGION,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="")

    def aws(*args: str) -> Any:
        proc = subprocess.run([str(AWS), "--endpoint-url", server.url, "--output", "json", "lambda", *args],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert aws("get-runtime-management-config", "--function-name", name) == {
        "UpdateRuntimeOn": "Auto", "FunctionArn": function_arn(name)}
    arn = aws("get-function-configuration", "--function-name", name)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert aws("put-runtime-management-config", "--function-name", name, "--update-runtime-on", "Manual",
               "--runtime-version-arn", arn) == {
        "UpdateRuntimeOn": "Manual", "FunctionArn": function_arn(name), "RuntimeVersionArn": arn}


# --- durability ----------------------------------------------------------------------------------------------

@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


def _create(client: Any, name: str, runtime: str = "python3.11") -> dict[str, Any]:
    created: dict[str, Any] = client.create_function(FunctionName=name, Runtime=runtime, Handler="app.handler",
                                                     Role=ROLE, Code={"ZipFile": make_zip(ECHO)})
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return created


def test_a_restart_keeps_every_version_s_setting(own_server: LaminaServer) -> None:
    client = own_server.client()
    name = f"rv-restart-{uuid.uuid4().hex[:8]}"
    arn = _version_arn(_create(client, name))
    client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual", RuntimeVersionArn=arn)
    client.publish_version(FunctionName=name)
    client.put_runtime_management_config(FunctionName=name, Qualifier="1", UpdateRuntimeOn="FunctionUpdate")
    before = {q: _rmc(client.get_runtime_management_config(FunctionName=name, Qualifier=q)) for q in ("$LATEST", "1")}

    own_server.stop()
    own_server.start()
    client = own_server.client()
    after = {q: _rmc(client.get_runtime_management_config(FunctionName=name, Qualifier=q)) for q in ("$LATEST", "1")}
    assert after == before
    assert after["$LATEST"]["RuntimeVersionArn"] == arn
    assert after["1"]["UpdateRuntimeOn"] == "FunctionUpdate"
    assert _version_arn(client.get_function_configuration(FunctionName=name)) == arn
    assert _version_arn(client.get_function_configuration(FunctionName=name, Qualifier="1")) == arn


# --- AWS's runtime lifecycle ---------------------------------------------------------------------------

def test_blocked_runtimes_get_aws_s_error_today(lambda_client: Any, create_function: Callable[..., str],
                                                unique_name: Callable[[str], str]) -> None:
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=unique_name("old"), Runtime="python3.7", Handler="app.handler",
                                      Role=ROLE, Code={"ZipFile": make_zip(ECHO)})
    assert_aws_error(e.value, 400, "InvalidParameterValueException", no_longer_supported("python3.7"))
    name = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(FunctionName=name, Runtime="nodejs12.x")
    assert_aws_error(e.value, 400, "InvalidParameterValueException", no_longer_supported("nodejs12.x"))


def _server_on(data_dir: Path, day: str) -> LaminaServer:
    srv = LaminaServer(data_dir, env={"LAMINA_RUNTIME_LIFECYCLE_DATE": day})
    srv.start()
    return srv


def test_the_lifecycle_follows_the_calendar(tmp_path: Path) -> None:
    """python3.10: block create 2027-02-01, block update 2027-03-03 (AWS's published dates)."""
    data = tmp_path / "data"
    name = f"rv-old-{uuid.uuid4().hex[:8]}"

    srv = _server_on(data, "2027-01-31")  # the day before AWS stops creating python3.10 functions
    try:
        client = srv.client()
        _create(client, name, runtime="python3.10")
        assert invoke_json(client, name, {"day": 1})[1] == {"day": 1}
    finally:
        srv.stop()

    srv = _server_on(data, "2027-02-15")  # create blocked, updates allowed
    try:
        client = srv.client()
        with pytest.raises(ClientError) as e:
            client.create_function(FunctionName=name + "-2", Runtime="python3.10", Handler="app.handler",
                                   Role=ROLE, Code={"ZipFile": make_zip(ECHO)})
        assert_aws_error(e.value, 400, "InvalidParameterValueException", no_longer_supported("python3.10"))
        client.update_function_code(FunctionName=name, ZipFile=make_zip(ECHO | {"v2.py": ""}))
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        client.update_function_configuration(FunctionName=name, Runtime="python3.10", Timeout=5)
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    finally:
        srv.stop()

    srv = _server_on(data, "2027-03-03")  # updates blocked too; invokes never are
    try:
        client = srv.client()
        assert invoke_json(client, name, {"day": 3})[1] == {"day": 3}
        with pytest.raises(ClientError) as e:
            client.update_function_code(FunctionName=name, ZipFile=make_zip(ECHO | {"v3.py": ""}))
        assert_aws_error(e.value, 400, "InvalidParameterValueException", no_longer_supported("python3.10"))
        with pytest.raises(ClientError) as e:
            client.update_function_configuration(FunctionName=name, Runtime="python3.10")
        assert_aws_error(e.value, 400, "InvalidParameterValueException", no_longer_supported("python3.10"))
        # a change that leaves the runtime alone is still allowed, and so is moving off it
        client.update_function_configuration(FunctionName=name, MemorySize=256)
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        moved = client.update_function_configuration(FunctionName=name, Runtime="python3.11")
        assert moved["Runtime"] == "python3.11"
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        assert invoke_json(client, name, {"day": 4})[1] == {"day": 4}
    finally:
        srv.stop()
