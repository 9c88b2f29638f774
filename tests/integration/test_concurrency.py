"""Scaling and concurrency controls as the AWS Lambda API reference describes them.

Covers parallel invocations in separate environments, reserved concurrency
(Put/Get/DeleteFunctionConcurrency, GetFunction's `Concurrency`, GetAccountSettings'
`UnreservedConcurrentExecutions`), provisioned-concurrency requests on a function that has no
published versions, and the reaping of idle environments as seen through `/_lamina/status`.
Expected messages are the ones AWS answers with; throttling itself lives in test_throttling.py.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import FAST_WAIT, REGION, ROLE, LaminaServer, assert_aws_error, function_arn, make_zip

Fn = Callable[..., str]

# Reports which environment served the call; sleeps or fails on request.
SLEEPER: dict[str, str | bytes] = {"app.py": (
    "import time, uuid\n"
    "ENV_ID = uuid.uuid4().hex\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    if event.get('fail'):\n"
    "        raise RuntimeError('failed on request')\n"
    "    return {'env': ENV_ID}\n"
)}

QUALIFIED_REFUSED = (
    "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
    "operation. Please specify either a function name or an unqualified function ARN."
)
PROVISIONED_ON_LATEST = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
NOT_ALIAS_OR_VERSION = "The function resource provided must be an alias or a published version."
PROVISIONED_ZERO = (
    "1 validation error detected: Value '0' at 'provisionedConcurrentExecutions' failed to satisfy "
    "constraint: Member must have value greater than or equal to 1"
)


def below_minimum(minimum: int) -> str:
    return ("Specified ReservedConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{minimum}].")


def not_found(name: str, qualifier: str | None = None) -> str:
    arn = function_arn(name) + (f":{qualifier}" if qualifier else "")
    return f"Function not found: {arn}"


def invoke(client: Any, name: str, event: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    raw = resp.pop("Payload").read()
    return resp, json.loads(raw) if raw else None


def status_of(server: LaminaServer) -> dict[str, Any]:
    return server.status()


def function_status(server: LaminaServer, name: str) -> dict[str, Any]:
    functions = status_of(server)["functions"]
    key = f"{REGION}/{name}"
    assert key in functions, f"{key} missing from status: {sorted(functions)}"
    result: dict[str, Any] = functions[key]
    return result


class Functions:
    """Creates functions on one server and deletes them (and their reservations) afterwards."""

    def __init__(self, client: Any, unique_name: Callable[[str], str]) -> None:
        self.client = client
        self.unique_name = unique_name
        self.created: list[str] = []

    def __call__(self, files: dict[str, str | bytes] | None = None, **kwargs: Any) -> str:
        name = self.unique_name("")
        self.client.create_function(
            FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
            Code={"ZipFile": make_zip(files or SLEEPER)}, **kwargs)
        self.created.append(name)
        self.client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        return name

    def cleanup(self) -> None:
        for name in self.created:
            with contextlib.suppress(ClientError):
                self.client.delete_function_concurrency(FunctionName=name)
            with contextlib.suppress(ClientError):
                self.client.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """Account limit 10, minimum unreserved 2, idle environments reaped after 1 s."""
    data: Path = tmp_path_factory.mktemp("lamina-small") / "data"
    srv = LaminaServer(data, env={"LAMINA_CONCURRENCY_LIMIT": "10", "LAMINA_MIN_UNRESERVED": "2",
                                  "LAMINA_IDLE_TIMEOUT": "1"})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def small_functions(small_server: LaminaServer, unique_name: Callable[[str], str]) -> Iterator[Functions]:
    functions = Functions(small_server.client(), unique_name)
    yield functions
    functions.cleanup()


def unreserved(client: Any) -> int:
    return int(client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"])


# --- parallel invocations ------------------------------------------------------------------------


def test_parallel_invokes_run_at_once_in_separate_environments(lambda_client: Any,
                                                                create_function: Fn) -> None:
    fn = create_function(SLEEPER, Timeout=10)
    n = 4

    def one(_: int) -> Any:
        resp, body = invoke(lambda_client, fn, {"sleep": 1})
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
        return body

    started = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    elapsed = time.monotonic() - started
    assert len({r["env"] for r in results}) == n, f"each invocation needs its own environment: {results}"
    assert elapsed < 2.5, f"{n} parallel 1 s invocations took {elapsed:.2f} s: they did not run at once"


# --- reserved concurrency: round trips -----------------------------------------------------------


def test_reserved_concurrency_round_trip(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(SLEEPER)

    got = lambda_client.get_function_concurrency(FunctionName=fn)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "ReservedConcurrentExecutions" not in got, "no reservation: the field is absent"
    assert "Concurrency" not in lambda_client.get_function(FunctionName=fn)

    put = lambda_client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert {k: v for k, v in put.items() if k != "ResponseMetadata"} == {"ReservedConcurrentExecutions": 2}

    got = lambda_client.get_function_concurrency(FunctionName=fn)
    assert got["ReservedConcurrentExecutions"] == 2
    assert lambda_client.get_function(FunctionName=fn)["Concurrency"] == {"ReservedConcurrentExecutions": 2}

    # 0 is a valid reservation (it stops the function from being invoked) and replaces the old one
    put0 = lambda_client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    assert put0["ReservedConcurrentExecutions"] == 0
    assert lambda_client.get_function_concurrency(FunctionName=fn)["ReservedConcurrentExecutions"] == 0
    assert lambda_client.get_function(FunctionName=fn)["Concurrency"] == {"ReservedConcurrentExecutions": 0}

    deleted = lambda_client.delete_function_concurrency(FunctionName=fn)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = lambda_client.get_function_concurrency(FunctionName=fn)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "ReservedConcurrentExecutions" not in got
    assert "Concurrency" not in lambda_client.get_function(FunctionName=fn)


def test_reserved_concurrency_by_unqualified_arn(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(SLEEPER)
    arn = function_arn(fn)
    lambda_client.put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=1)
    assert lambda_client.get_function_concurrency(FunctionName=fn)["ReservedConcurrentExecutions"] == 1
    assert lambda_client.get_function_concurrency(FunctionName=arn)["ReservedConcurrentExecutions"] == 1
    lambda_client.delete_function_concurrency(FunctionName=arn)
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=fn)


# --- reserved concurrency: validation ------------------------------------------------------------


@pytest.mark.parametrize("qualified", ["arn_latest", "name_latest"])
def test_qualified_function_is_refused(lambda_client: Any, create_function: Fn, qualified: str) -> None:
    fn = create_function(SLEEPER)
    name = {
        "arn_latest": function_arn(fn) + ":$LATEST",
        "name_latest": fn + ":$LATEST",
    }[qualified]
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert_aws_error(e.value, 400, "InvalidParameterValueException", QUALIFIED_REFUSED)
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=fn)


def test_reserved_concurrency_on_unknown_function(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    missing = unique_name("missing")
    for reserved in (1, 0):
        with pytest.raises(ClientError) as e:
            lambda_client.put_function_concurrency(FunctionName=missing, ReservedConcurrentExecutions=reserved)
        assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(missing, "$LATEST"))
    with pytest.raises(ClientError) as e:
        lambda_client.get_function_concurrency(FunctionName=missing)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(missing))
    with pytest.raises(ClientError) as e:
        lambda_client.delete_function_concurrency(FunctionName=missing)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", prefix=f"Function not found: {function_arn(missing)}")


def test_account_settings_track_reservations(small_server: LaminaServer, small_functions: Functions) -> None:
    client = small_functions.client
    settings = client.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 10
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 10

    a, b, c = small_functions(), small_functions(), small_functions()
    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=3)
    assert unreserved(client) == 7
    client.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=5)
    assert unreserved(client) == 2
    # a new value replaces the function's old reservation instead of adding to it
    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=2)
    assert unreserved(client) == 3
    client.put_function_concurrency(FunctionName=c, ReservedConcurrentExecutions=0)
    assert unreserved(client) == 3
    assert client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 10

    client.delete_function_concurrency(FunctionName=a)
    assert unreserved(client) == 5
    client.delete_function_concurrency(FunctionName=b)
    assert unreserved(client) == 10

    # a deleted function's reservation goes with it
    client.put_function_concurrency(FunctionName=c, ReservedConcurrentExecutions=4)
    assert unreserved(client) == 6
    client.delete_function(FunctionName=c)
    assert unreserved(client) == 10


def test_reservation_below_minimum_unreserved_is_refused(small_server: LaminaServer,
                                                          small_functions: Functions) -> None:
    client = small_functions.client
    a, b = small_functions(), small_functions()

    # limit 10, minimum unreserved 2: at most 8 may be reserved; above the account limit the
    # message is the same (reserved concurrency has no separate message for that case)
    for too_many in (9, 10, 11, 1000):
        with pytest.raises(ClientError) as e:
            client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=too_many)
        assert_aws_error(e.value, 400, "InvalidParameterValueException", below_minimum(2))
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName=a)
    assert unreserved(client) == 10

    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=8)
    assert unreserved(client) == 2
    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=8)  # same value again
    with pytest.raises(ClientError) as e:
        client.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=1)
    assert_aws_error(e.value, 400, "InvalidParameterValueException", below_minimum(2))
    client.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=0)  # 0 takes nothing

    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=7)
    client.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=1)
    assert unreserved(client) == 2
    assert client.get_function_concurrency(FunctionName=a)["ReservedConcurrentExecutions"] == 7
    assert client.get_function_concurrency(FunctionName=b)["ReservedConcurrentExecutions"] == 1


# --- provisioned concurrency without published versions --------------------------------------------


def test_provisioned_concurrency_on_latest_is_refused(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(SLEEPER)
    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=fn, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    assert_aws_error(e.value, 400, "InvalidParameterValueException", PROVISIONED_ON_LATEST)
    with pytest.raises(ClientError) as e:
        lambda_client.get_provisioned_concurrency_config(FunctionName=fn, Qualifier="$LATEST")
    assert_aws_error(e.value, 400, "InvalidParameterValueException", NOT_ALIAS_OR_VERSION)
    with pytest.raises(ClientError) as e:
        lambda_client.delete_provisioned_concurrency_config(FunctionName=fn, Qualifier="$LATEST")
    assert_aws_error(e.value, 400, "InvalidParameterValueException", NOT_ALIAS_OR_VERSION)


def test_provisioned_concurrency_on_missing_version_or_alias(lambda_client: Any, create_function: Fn,
                                                             unique_name: Callable[[str], str]) -> None:
    fn = create_function(SLEEPER)
    missing = unique_name("missing")
    arn = function_arn(fn)

    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=fn, Qualifier="1", ProvisionedConcurrentExecutions=1)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(fn, "1"))
    with pytest.raises(ClientError) as e:
        lambda_client.get_provisioned_concurrency_config(FunctionName=fn, Qualifier="10")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(fn, "10"))
    with pytest.raises(ClientError) as e:
        lambda_client.delete_provisioned_concurrency_config(FunctionName=fn, Qualifier="10")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(fn, "10"))

    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=fn, Qualifier="noalias", ProvisionedConcurrentExecutions=1)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Cannot find alias arn: {arn}:noalias")
    with pytest.raises(ClientError) as e:
        lambda_client.get_provisioned_concurrency_config(FunctionName=fn, Qualifier="noalias")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", f"Cannot find alias arn: {arn}:noalias")

    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=missing, Qualifier="1", ProvisionedConcurrentExecutions=1)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(missing, "1"))
    with pytest.raises(ClientError) as e:
        lambda_client.delete_provisioned_concurrency_config(FunctionName=missing, Qualifier="1")
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(missing, "1"))


def test_provisioned_concurrency_of_zero_fails_validation(unvalidated_client: Any, create_function: Fn) -> None:
    fn = create_function(SLEEPER)
    with pytest.raises(ClientError) as e:
        unvalidated_client.put_provisioned_concurrency_config(
            FunctionName=fn, Qualifier="1", ProvisionedConcurrentExecutions=0)
    assert_aws_error(e.value, 400, "ValidationException", PROVISIONED_ZERO)


def test_list_provisioned_concurrency_configs(lambda_client: Any, create_function: Fn,
                                              unique_name: Callable[[str], str]) -> None:
    fn = create_function(SLEEPER)
    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=fn)
    assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert listed["ProvisionedConcurrencyConfigs"] == []
    assert "NextMarker" not in listed

    missing = unique_name("missing")
    with pytest.raises(ClientError) as e:
        lambda_client.list_provisioned_concurrency_configs(FunctionName=missing)
    assert_aws_error(e.value, 404, "ResourceNotFoundException", not_found(missing))


# --- idle environments -------------------------------------------------------------------------------


def test_idle_environment_is_reaped_and_its_memory_released(small_server: LaminaServer,
                                                            small_functions: Functions) -> None:
    fn = small_functions(MemorySize=256)
    resp, _ = invoke(small_functions.client, fn)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp

    before = status_of(small_server)
    entry = before["functions"][f"{REGION}/{fn}"]
    assert entry["environments"]["idle"] == 1
    assert entry["environments"]["busy"] == 0
    assert entry["memory_mb"] == 256
    assert before["reserved_mb"] == 256, "an idle environment keeps its memory reserved"

    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        after = status_of(small_server)
        envs = after["functions"].get(f"{REGION}/{fn}", {}).get("environments", {})
        if envs.get("idle", 0) == 0 and after["reserved_mb"] == 0:
            break
        time.sleep(0.25)
    envs = after["functions"][f"{REGION}/{fn}"]["environments"]
    assert envs == {"starting": 0, "idle": 0, "busy": 0, "provisioned": 0}
    assert after["reserved_mb"] == 0, "a reaped environment gives its memory back"
    assert after["concurrent_executions"] == 0


# --- status ---------------------------------------------------------------------------------------------


def test_status_shape(small_server: LaminaServer) -> None:
    status = status_of(small_server)
    assert status["concurrency_limit"] == 10
    for key in ("capacity_mb", "reserved_mb", "concurrency_limit", "concurrent_executions"):
        assert isinstance(status[key], int), (key, status)
    assert status["capacity_mb"] > 0
    assert isinstance(status["functions"], dict)


def test_status_counts_invocations_errors_and_cold_starts(server: LaminaServer, lambda_client: Any,
                                                         create_function: Fn) -> None:
    fn = create_function(SLEEPER)
    for event in ({}, {}, {"fail": True}, {}):
        invoke(lambda_client, fn, event)
    entry = function_status(server, fn)
    assert entry["invocations"] == 4
    assert entry["errors"] == 1, "a handler exception is a function error"
    assert entry["throttles"] == 0
    assert entry["cold_starts"] == 1, "a handler exception does not cost the environment"
    assert entry["concurrent_executions"] == 0
    assert entry["memory_mb"] == 128
    assert entry["environments"] == {"starting": 0, "idle": 1, "busy": 0, "provisioned": 0}


def test_status_is_signed_json(server: LaminaServer) -> None:
    """Answered to a SigV4-signed GET; unsigned ones are refused (tests/security/test_api_edge.py)."""
    url = server.url + "/_lamina/status"
    signed = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("test", "test"), "lambda", REGION).add_auth(signed)
    with urllib.request.urlopen(urllib.request.Request(url, headers=dict(signed.headers.items())), timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        assert "functions" in json.loads(r.read())

