"""Invoke throttling as AWS Lambda answers it: 429 TooManyRequestsException, refused at once.

AWS's Invoke reference: a request past a concurrency limit fails with HTTP 429, error type
TooManyRequestsException, message "Rate Exceeded.", a `Reason` in the body
(ReservedFunctionConcurrentInvocationLimitExceeded when the function's reserved concurrency is
reached, ConcurrentInvocationLimitExceeded when the account's pool is exhausted) and a
Retry-After header. Each test runs on a server of its own with small limits.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.conftest import FAST_WAIT, REGION, ROLE, LaminaServer, assert_aws_error, make_zip

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"

# Reports which environment served the call; sleeps on request.
SLEEPER: dict[str, str | bytes] = {"app.py": (
    "import time, uuid\n"
    "ENV_ID = uuid.uuid4().hex\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return {'env': ENV_ID}\n"
)}


class Outcome:
    """One invocation's result: the decoded body, or the ClientError it raised, and how long it took."""

    def __init__(self, body: Any, error: ClientError | None, elapsed: float) -> None:
        self.body = body
        self.error = error
        self.elapsed = elapsed

    @property
    def ok(self) -> bool:
        return self.error is None


def attempt(client: Any, name: str, event: dict[str, Any] | None = None) -> Outcome:
    started = time.monotonic()
    try:
        resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    except ClientError as err:
        return Outcome(None, err, time.monotonic() - started)
    body = json.loads(resp["Payload"].read())
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
    return Outcome(body, None, time.monotonic() - started)


def assert_throttled(outcome: Outcome, reason: str) -> None:
    """A throttle exactly as boto3 sees AWS's: status, code, message, Reason, Retry-After."""
    assert outcome.error is not None, f"expected a throttle, the invocation ran: {outcome.body}"
    assert_aws_error(outcome.error, 429, "TooManyRequestsException", "Rate Exceeded.")
    response = outcome.error.response
    assert response.get("Reason") == reason, response
    retry_after = response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), f"Retry-After header: {retry_after!r}"
    assert outcome.elapsed < 1.0, f"a throttled request is refused at once, not queued ({outcome.elapsed:.2f} s)"


def status_of(server: LaminaServer) -> dict[str, Any]:
    return server.status()


def wait_until(check: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> Callable[[LaminaServer], None]:
    """Returns a poller of /_lamina/status that waits until `check(status)` or `timeout` seconds pass."""
    def poll(server: LaminaServer) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if check(status_of(server)):
                    return
            time.sleep(0.05)
    return poll


def wait_for_busy(server: LaminaServer, count: int) -> None:
    """Wait (at most 5 s) until `count` invocations have been admitted."""
    wait_until(lambda status: int(status["concurrent_executions"]) >= count)(server)


class Functions:
    """Creates functions on one server and deletes them (and their reservations) afterwards."""

    def __init__(self, server: LaminaServer, unique_name: Callable[[str], str]) -> None:
        self.server = server
        # one attempt per call: botocore would otherwise retry a 429 on its own
        self.client = boto3.client(
            "lambda", endpoint_url=server.url, region_name=REGION,
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=20, read_timeout=60))
        self.unique_name = unique_name
        self.created: list[str] = []

    def __call__(self, **kwargs: Any) -> str:
        name = self.unique_name("")
        self.client.create_function(
            FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
            Code={"ZipFile": make_zip(SLEEPER)}, Timeout=30, **kwargs)
        self.created.append(name)
        self.client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        return name

    def status(self, name: str) -> dict[str, Any]:
        functions = status_of(self.server)["functions"]
        key = f"{REGION}/{name}"
        assert key in functions, f"{key} missing from status: {sorted(functions)}"
        result: dict[str, Any] = functions[key]
        return result

    def cleanup(self) -> None:
        for name in self.created:
            with contextlib.suppress(ClientError):
                self.client.delete_function_concurrency(FunctionName=name)
            with contextlib.suppress(ClientError):
                self.client.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """Account limit 3 concurrent executions, minimum unreserved 1."""
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-limited") / "data",
                       env={"LAMINA_CONCURRENCY_LIMIT": "3", "LAMINA_MIN_UNRESERVED": "1"})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def capacity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    """Room for four 128 MB environments; the concurrency limit is not what binds."""
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-capacity") / "data",
                       env={"LAMINA_CAPACITY_MB": "512", "LAMINA_CONCURRENCY_LIMIT": "10",
                            "LAMINA_MIN_UNRESERVED": "2"})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def limited(limited_server: LaminaServer, unique_name: Callable[[str], str]) -> Iterator[Functions]:
    functions = Functions(limited_server, unique_name)
    yield functions
    functions.cleanup()


@pytest.fixture
def capacity(capacity_server: LaminaServer, unique_name: Callable[[str], str]) -> Iterator[Functions]:
    functions = Functions(capacity_server, unique_name)
    yield functions
    functions.cleanup()


# --- reserved concurrency ---------------------------------------------------------------------------


def test_reserved_concurrency_caps_parallel_invocations(limited: Functions) -> None:
    client = limited.client
    fn = limited()
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=2)

    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(lambda _: attempt(client, fn, {"sleep": 1.5}), range(5)))
    elapsed = time.monotonic() - started

    ran = [o for o in outcomes if o.ok]
    throttled = [o for o in outcomes if not o.ok]
    assert len(ran) == 2, [o.error or o.body for o in outcomes]
    assert len({o.body["env"] for o in ran}) == 2, "the two admitted invocations run side by side"
    assert elapsed < 2.9, f"the two admitted invocations ran one after the other ({elapsed:.2f} s)"
    assert len(throttled) == 3
    for outcome in throttled:
        assert_throttled(outcome, RESERVED_LIMIT)

    # once they are done, the function takes invocations again
    assert attempt(client, fn).ok
    assert limited.status(fn)["throttles"] == 3


def test_reserved_zero_throttles_every_invocation(limited: Functions) -> None:
    client = limited.client
    fn = limited()
    assert attempt(client, fn).ok
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    for _ in range(2):
        assert_throttled(attempt(client, fn), RESERVED_LIMIT)

    client.delete_function_concurrency(FunctionName=fn)
    assert attempt(client, fn).ok


def test_status_counts_throttles(limited: Functions) -> None:
    client = limited.client
    fn = limited()
    assert attempt(client, fn).ok
    assert attempt(client, fn).ok
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    assert not attempt(client, fn).ok
    client.delete_function_concurrency(FunctionName=fn)
    assert attempt(client, fn).ok

    entry = limited.status(fn)
    assert entry["invocations"] == 3, "throttled requests are not invocations"
    assert entry["throttles"] == 1
    assert entry["errors"] == 0
    assert entry["cold_starts"] == 1
    assert entry["concurrent_executions"] == 0


# --- account limit -------------------------------------------------------------------------------


def test_account_limit_across_functions(limited: Functions) -> None:
    client = limited.client
    a, b = limited(), limited()
    assert client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 3

    with ThreadPoolExecutor(3) as pool:
        sleepers: list[Future[Outcome]] = [
            pool.submit(attempt, client, name, {"sleep": 2.5}) for name in (a, a, b)
        ]
        wait_for_busy(limited.server, 3)
        assert status_of(limited.server)["concurrent_executions"] == 3
        extra_a = attempt(client, a)
        extra_b = attempt(client, b)
        results = [f.result() for f in sleepers]

    assert all(o.ok for o in results), [o.error for o in results]
    assert_throttled(extra_a, ACCOUNT_LIMIT)
    assert_throttled(extra_b, ACCOUNT_LIMIT)
    assert attempt(client, a).ok and attempt(client, b).ok


def test_reservation_is_kept_free_of_other_functions(limited: Functions) -> None:
    """With 2 of 3 reserved for A, B may use only the 1 left; A still gets its 2."""
    client = limited.client
    a, b = limited(), limited()
    client.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=2)

    with ThreadPoolExecutor(3) as pool:
        b_sleeper = pool.submit(attempt, client, b, {"sleep": 2.0})
        wait_for_busy(limited.server, 1)
        assert_throttled(attempt(client, b), ACCOUNT_LIMIT)
        a_runs = [pool.submit(attempt, client, a, {"sleep": 0.5}) for _ in range(2)]
        assert all(f.result().ok for f in a_runs), "a function's reservation is not taken by others"
        assert b_sleeper.result().ok


# --- memory capacity ---------------------------------------------------------------------------------


def test_idle_environments_are_evicted_for_another_function(capacity: Functions) -> None:
    client = capacity.client
    a, b = capacity(), capacity()

    with ThreadPoolExecutor(4) as pool:
        warm = list(pool.map(lambda _: attempt(client, a, {"sleep": 0.5}), range(4)))
    assert all(o.ok for o in warm), [o.error for o in warm]
    assert len({o.body["env"] for o in warm}) == 4
    before = capacity.status(a)["environments"]
    assert before["idle"] == 4
    assert status_of(capacity.server)["reserved_mb"] == 512

    assert attempt(client, b).ok, "an idle environment of another function makes room"
    after = capacity.status(a)["environments"]
    assert after["idle"] < 4
    assert capacity.status(b)["environments"]["idle"] == 1
    assert status_of(capacity.server)["reserved_mb"] <= 512


def test_busy_environments_are_never_evicted(capacity: Functions) -> None:
    client = capacity.client
    a, b = capacity(), capacity()

    with ThreadPoolExecutor(4) as pool:
        sleepers = [pool.submit(attempt, client, a, {"sleep": 3.0}) for _ in range(4)]
        key = f"{REGION}/{a}"
        wait_until(lambda status: status["functions"][key]["environments"]["busy"] == 4)(capacity.server)
        assert capacity.status(a)["environments"]["busy"] == 4
        assert_throttled(attempt(client, b), ACCOUNT_LIMIT)
        results = [f.result() for f in sleepers]
    assert all(o.ok for o in results), [o.error for o in results]
    assert capacity.status(b)["throttles"] == 1
    assert attempt(client, b).ok, "once an environment of A is idle it can be evicted"
