"""Asynchronous invocation end to end: a real server with short retry delays, real functions,
destinations to functions and to SQS queues on moto's server, dead-letter queues, event age.

Attempts are counted inside the functions (each prints a marker line to its log); records
sent to a destination function are printed by that function and read back from its log.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import (
    REGION,
    ROLE,
    UUID_RE,
    LaminaServer,
    assert_aws_error,
    function_arn,
    make_zip,
)
from tests.integration.sqs_peer import SqsPeer

RETRY_DELAY = 0.3
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# prints one ATTEMPT line per invocation; fails as the event asks
WORKER = (
    "import json, os, time\n"
    "def handler(event, context):\n"
    "    print('ATTEMPT', context.aws_request_id, json.dumps(event))\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    if event.get('fail') == 'raise':\n"
    "        raise ValueError('boom')\n"
    "    if event.get('fail') == 'crash':\n"
    "        os._exit(3)\n"
    "    return {'echo': event}\n"
)
# a destination: prints every record it receives
RECORDER = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('RECORD', json.dumps(event))\n"
)


@pytest.fixture(scope="module")
def sqs_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsPeer]:
    peer = SqsPeer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def async_server(tmp_path_factory: pytest.TempPathFactory, sqs_peer: SqsPeer) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-async") / "data", env={
        "LAMINA_ASYNC_RETRY_DELAYS": f"{RETRY_DELAY},{RETRY_DELAY}", "LAMINA_SQS_ENDPOINT": sqs_peer.url})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(async_server: LaminaServer) -> Any:
    return async_server.client()


@pytest.fixture
def make_function(client: Any) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(source: str = WORKER, **kwargs: Any) -> str:
        name = f"async-{uuid.uuid4().hex[:10]}"
        client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": make_zip({"app.py": source})}, **kwargs)
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
        created.append(name)
        return name

    yield make
    for name in created:
        with contextlib.suppress(ClientError):  # the test deleted it already
            client.delete_function(FunctionName=name)


def log_text(server: LaminaServer, name: str) -> str:
    path: Path = server.data_dir / "logs" / REGION / f"{name}.log"
    return path.read_text() if path.exists() else ""


def attempts(server: LaminaServer, name: str, request_id: str) -> int:
    return sum(1 for line in log_text(server, name).splitlines() if line.startswith(f"ATTEMPT {request_id}"))


def records(server: LaminaServer, name: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("RECORD "):]) for line in log_text(server, name).splitlines()
            if line.startswith("RECORD ")]


def wait_for(what: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting: {message}")


def status_of(server: LaminaServer, name: str) -> dict[str, Any]:
    data = server.status()
    return dict((data["functions"].get(f"{REGION}/{name}") or {}).get("async") or {})


def send_event(client: Any, name: str, event: dict[str, Any], **kwargs: Any) -> str:
    answer = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode(), **kwargs)
    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    request_id: str = answer["ResponseMetadata"]["RequestId"]
    assert UUID_RE.match(request_id)
    return request_id


# -- success path ------------------------------------------------------------------------------

def test_event_invoke_is_acknowledged_then_runs(client: Any, async_server: LaminaServer,
                                                make_function: Callable[..., str]) -> None:
    fn = make_function()
    rid = send_event(client, fn, {"hello": "world"})
    wait_for(lambda: attempts(async_server, fn, rid) == 1, message="the event to run")
    assert f'ATTEMPT {rid} {{"hello": "world"}}' in log_text(async_server, fn)
    wait_for(lambda: status_of(async_server, fn).get("succeeded") == 1, message="the success to be counted")
    status = status_of(async_server, fn)
    assert status["accepted"] == 1 and status["queued"] == 0 and status["in_flight"] == 0
    time.sleep(RETRY_DELAY * 3)
    assert attempts(async_server, fn, rid) == 1  # a success is not retried


def test_success_record_sent_to_destination_function(client: Any, async_server: LaminaServer,
                                                     make_function: Callable[..., str]) -> None:
    recorder = make_function(RECORDER)
    fn = make_function()
    client.put_function_event_invoke_config(
        FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": function_arn(recorder)}})
    rid = send_event(client, fn, {"k": "v"})
    (record,) = wait_for(lambda: records(async_server, recorder), message="the OnSuccess record")
    assert TIMESTAMP_RE.match(record.pop("timestamp"))
    assert record == {
        "version": "1.0",
        "requestContext": {"requestId": rid, "functionArn": f"{function_arn(fn)}:$LATEST",
                           "condition": "Success", "approximateInvokeCount": 1},
        "requestPayload": {"k": "v"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"echo": {"k": "v"}},
    }


def test_invoke_async_operation(client: Any, async_server: LaminaServer, make_function: Callable[..., str]) -> None:
    fn = make_function()
    answer = client.invoke_async(FunctionName=fn, InvokeArgs=b'{"legacy": true}')
    assert answer["Status"] == 202
    wait_for(lambda: '{"legacy": true}' in log_text(async_server, fn), message="the InvokeAsync event to run")


# -- retries ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fail", "retries"), [("raise", 0), ("raise", 1), ("raise", 2), ("crash", 1)])
def test_function_errors_retried_then_failure_record(client: Any, async_server: LaminaServer,
                                                     make_function: Callable[..., str], fail: str,
                                                     retries: int) -> None:
    recorder = make_function(RECORDER)
    fn = make_function()
    client.put_function_event_invoke_config(
        FunctionName=fn, MaximumRetryAttempts=retries,
        DestinationConfig={"OnFailure": {"Destination": function_arn(recorder)}})
    rid = send_event(client, fn, {"fail": fail})
    (record,) = wait_for(lambda: records(async_server, recorder), timeout=60, message="the OnFailure record")
    assert attempts(async_server, fn, rid) == retries + 1
    assert record["requestContext"] == {"requestId": rid, "functionArn": f"{function_arn(fn)}:$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": retries + 1}
    assert record["requestPayload"] == {"fail": fail}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                         "functionError": "Unhandled"}
    if fail == "raise":
        assert record["responsePayload"]["errorType"] == "ValueError"
        assert record["responsePayload"]["errorMessage"] == "boom"
    else:
        assert record["responsePayload"]["errorType"] == "Runtime.ExitError"
    status = status_of(async_server, fn)
    assert (status["failed"], status["retried"], status["dead_lettered"]) == (1, retries, 1)
    time.sleep(RETRY_DELAY * 3)
    assert attempts(async_server, fn, rid) == retries + 1  # and never again


def test_default_is_two_retries(client: Any, async_server: LaminaServer, make_function: Callable[..., str]) -> None:
    fn = make_function()
    rid = send_event(client, fn, {"fail": "raise"})
    wait_for(lambda: status_of(async_server, fn).get("failed") == 1, timeout=60, message="the event to fail")
    assert attempts(async_server, fn, rid) == 3


def test_alias_config_applies_to_invokes_through_the_alias(client: Any, async_server: LaminaServer,
                                                           make_function: Callable[..., str]) -> None:
    fn = make_function()
    version = client.publish_version(FunctionName=fn)["Version"]
    client.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    client.put_function_event_invoke_config(FunctionName=fn, Qualifier="live", MaximumRetryAttempts=0)
    through_alias = send_event(client, fn, {"fail": "raise"}, Qualifier="live")
    unqualified = send_event(client, fn, {"fail": "raise"})
    wait_for(lambda: status_of(async_server, fn).get("failed") == 2, timeout=60, message="both events to fail")
    assert attempts(async_server, fn, through_alias) == 1
    assert attempts(async_server, fn, unqualified) == 3


# -- SQS destinations and dead-letter queues --------------------------------------------------------

def test_records_sent_to_sqs_destinations(client: Any, async_server: LaminaServer, sqs_peer: SqsPeer,
                                          make_function: Callable[..., str]) -> None:
    url, arn = sqs_peer.queue(f"records-{uuid.uuid4().hex[:8]}")
    fn = make_function()
    client.put_function_event_invoke_config(
        FunctionName=fn, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": arn}, "OnFailure": {"Destination": arn}})
    ok = send_event(client, fn, {"n": 1})
    bad = send_event(client, fn, {"fail": "raise"})
    bodies = {b["requestContext"]["requestId"]: b for b in sqs_peer.bodies(url, count=2)}
    assert set(bodies) == {ok, bad}
    assert bodies[ok]["requestContext"]["condition"] == "Success"
    assert bodies[ok]["responsePayload"] == {"echo": {"n": 1}}
    assert bodies[bad]["requestContext"]["condition"] == "RetriesExhausted"
    assert bodies[bad]["responseContext"]["functionError"] == "Unhandled"
    assert bodies[bad]["requestPayload"] == {"fail": "raise"}


def test_dead_letter_queue_gets_the_original_event(client: Any, async_server: LaminaServer, sqs_peer: SqsPeer,
                                                   make_function: Callable[..., str]) -> None:
    url, arn = sqs_peer.queue(f"dlq-{uuid.uuid4().hex[:8]}")
    fn = make_function(DeadLetterConfig={"TargetArn": arn})
    assert client.get_function_configuration(FunctionName=fn)["DeadLetterConfig"] == {"TargetArn": arn}
    client.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=1)
    rid = send_event(client, fn, {"fail": "raise", "id": 7})
    (message,) = sqs_peer.receive(url, count=1)
    assert json.loads(message["Body"]) == {"fail": "raise", "id": 7}
    assert message["MessageAttributes"] == {
        "RequestID": {"DataType": "String", "StringValue": rid},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "boom"},
    }
    assert attempts(async_server, fn, rid) == 2
    assert sqs_peer.receive(url, count=1, timeout=2) == []  # exactly once


# -- throttling and event age --------------------------------------------------------------------

def test_throttled_events_wait_until_the_function_has_capacity(client: Any, async_server: LaminaServer,
                                                               make_function: Callable[..., str]) -> None:
    fn = make_function()
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    rid = send_event(client, fn, {"held": True})
    time.sleep(2.5)
    status = status_of(async_server, fn)
    assert status["queued"] == 1 and status["succeeded"] == 0
    assert status["oldest_event_age_s"] >= 2.0
    assert attempts(async_server, fn, rid) == 0
    client.delete_function_concurrency(FunctionName=fn)
    wait_for(lambda: attempts(async_server, fn, rid) == 1, message="the held event to run")


def test_reserved_concurrency_bounds_async_deliveries(client: Any, async_server: LaminaServer,
                                                      make_function: Callable[..., str]) -> None:
    fn = make_function()
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=1)
    ids = [send_event(client, fn, {"sleep": 0.5, "i": i}) for i in range(3)]
    wait_for(lambda: status_of(async_server, fn).get("in_flight") == 1, message="one delivery in flight")
    status = status_of(async_server, fn)
    assert status["queued"] + status["in_flight"] + status["succeeded"] == 3
    wait_for(lambda: status_of(async_server, fn).get("succeeded") == 3, timeout=30, message="all three to run")
    assert all(attempts(async_server, fn, rid) == 1 for rid in ids)
    assert status_of(async_server, fn)["throttled"] == 0  # held back, never thrown at the limit


def test_event_age_expiry_sends_event_age_exceeded(client: Any, async_server: LaminaServer, sqs_peer: SqsPeer,
                                                    make_function: Callable[..., str]) -> None:
    url, arn = sqs_peer.queue(f"expired-{uuid.uuid4().hex[:8]}")
    fn = make_function()
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    client.put_function_event_invoke_config(FunctionName=fn, MaximumEventAgeInSeconds=60,
                                            DestinationConfig={"OnFailure": {"Destination": arn}})
    started = time.monotonic()
    rid = send_event(client, fn, {"too": "late"})
    (body,) = sqs_peer.bodies(url, count=1, timeout=90)
    assert time.monotonic() - started >= 59
    assert body["requestContext"] == {"requestId": rid, "functionArn": f"{function_arn(fn)}:$LATEST",
                                      "condition": "EventAgeExceeded", "approximateInvokeCount": 0}
    assert body["requestPayload"] == {"too": "late"}
    assert "responseContext" not in body
    assert attempts(async_server, fn, rid) == 0
    assert status_of(async_server, fn)["failed"] == 1


# -- bad input -------------------------------------------------------------------------------------

def test_async_payload_limit_and_bad_json(client: Any, async_server: LaminaServer,
                                          make_function: Callable[..., str]) -> None:
    fn = make_function()
    big = json.dumps({"x": "a" * 1_048_577}).encode()
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=fn, InvocationType="Event", Payload=big)
    assert_aws_error(exc.value, 413, "RequestEntityTooLargeException",
                     "Request must be smaller than 1048576 bytes for the InvokeFunction operation")
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=fn, InvocationType="Event", Payload=b'{"broken":')
    assert_aws_error(exc.value, 400, "InvalidRequestContentException",
                     prefix="Could not parse request body into json: Could not parse payload into json:")
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=f"missing-{uuid.uuid4().hex[:8]}", InvocationType="Event", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert status_of(async_server, fn).get("accepted", 0) == 0  # nothing was queued


def test_events_of_a_deleted_function_are_dropped(client: Any, async_server: LaminaServer,
                                                  make_function: Callable[..., str]) -> None:
    fn = make_function()
    client.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    send_event(client, fn, {"orphan": True})
    client.delete_function(FunctionName=fn)
    wait_for(lambda: status_of(async_server, fn).get("dropped") == 1, timeout=10, message="the event to be dropped")
