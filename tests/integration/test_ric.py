"""AWS's own runtime interface clients, packaged as custom runtimes, run unchanged on Lamina.

Each function is a `provided.al2023` zip holding the client (awslambdaric from PyPI or
aws-lambda-ric from npm), a `bootstrap` that starts it with `$_HANDLER`, and a handler, with a
layer bringing the interpreter (the OS-only image has none, as on AWS); everything is driven
through boto3 as a user would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration import ric_build

pytestmark = pytest.mark.timeout(1200)  # the first use builds aws-lambda-ric's native addon

PYTHON_APP = '''\
import os

invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    print("ric-log-line from python", event.get("tag"))
    if "fail" in event:
        raise ValueError("boom: " + event["fail"])
    client_context = context.client_context
    return {
        "event": event,
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "invoked_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory_mb": int(context.memory_limit_in_mb),
        "client_custom": client_context.custom if client_context else None,
        "pid": os.getpid(),
        "invocations": invocations,
    }
'''

NODE_APP = '''\
let invocations = 0;

export const handler = async (event, context) => {
  invocations += 1;
  console.log("ric-log-line from node", event.tag);
  if ("fail" in event) {
    throw new Error("boom: " + event.fail);
  }
  return {
    event,
    function_name: context.functionName,
    request_id: context.awsRequestId,
    invoked_arn: context.invokedFunctionArn,
    remaining_ms: context.getRemainingTimeInMillis(),
    memory_mb: Number(context.memoryLimitInMB),
    client_custom: context.clientContext ? context.clientContext.custom : null,
    pid: process.pid,
    invocations,
  };
};
'''


@dataclass(frozen=True)
class RicCase:
    name: str
    handler_file: str
    build: Callable[[dict[str, str]], ric_build.PackageTree]
    source: str
    layer: str          # the fixture that publishes its interpreter's layer


CASES = {
    "awslambdaric": RicCase("awslambdaric", "app.py", ric_build.python_ric_tree, PYTHON_APP, "python_layer"),
    "aws-lambda-ric": RicCase("aws-lambda-ric", "app.mjs", ric_build.node_ric_tree, NODE_APP, "node_layer"),
}

TIMEOUT_S = 30
MEMORY_MB = 256


@pytest.fixture(scope="session")
def ric_packages() -> dict[str, ric_build.PackageTree]:
    """Both clients installed once per session (and cached across sessions, see ric_build)."""
    return {name: case.build({case.handler_file: case.source}) for name, case in CASES.items()}


def _create(request: pytest.FixtureRequest, case: RicCase, tree: ric_build.PackageTree,
            create_function: Callable[..., str], runtime: str) -> str:
    return create_function(
        {path: entry.content for path, entry in tree.items()},
        modes={path: entry.mode for path, entry in tree.items()},
        runtime=runtime, handler="app.handler", Timeout=TIMEOUT_S, MemorySize=MEMORY_MB,
        Layers=[request.getfixturevalue(case.layer)],
    )


@pytest.fixture(params=sorted(CASES))
def ric_function(request: pytest.FixtureRequest, ric_packages: dict[str, ric_build.PackageTree],
                 create_function: Callable[..., str]) -> tuple[RicCase, str]:
    case = CASES[request.param]
    return case, _create(request, case, ric_packages[case.name], create_function, "provided.al2023")


@pytest.mark.parametrize("name", sorted(CASES))
def test_runs_on_provided_al2_too(request: pytest.FixtureRequest, lambda_client: Any, name: str,
                                  ric_packages: dict[str, ric_build.PackageTree],
                                  create_function: Callable[..., str]) -> None:
    case = CASES[name]
    fn = _create(request, case, ric_packages[name], create_function, "provided.al2")
    resp, body = invoke(lambda_client, fn, {"tag": "al2"})
    assert "FunctionError" not in resp, body
    assert body["event"] == {"tag": "al2"}
    assert body["function_name"] == fn


def invoke(lambda_client: Any, fn: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    resp = lambda_client.invoke(FunctionName=fn, Payload=json.dumps(event).encode(), **kwargs)
    assert resp["StatusCode"] == 200
    return resp, json.loads(resp["Payload"].read())


def test_event_round_trip(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    event = {"tag": "echo", "text": "héllo ☃", "n": [1, 2.5, None, True], "nested": {"a": {"b": "c"}},
             "blob": "x" * 200_000}
    resp, body = invoke(lambda_client, fn, event)
    assert "FunctionError" not in resp, body
    assert body["event"] == event


def test_context_fields(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    resp, body = invoke(lambda_client, fn, {"tag": "context"})
    assert body["function_name"] == fn
    assert body["invoked_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fn}"
    assert body["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert 0 < body["remaining_ms"] <= TIMEOUT_S * 1000
    assert body["remaining_ms"] > (TIMEOUT_S - 10) * 1000
    assert body["memory_mb"] == MEMORY_MB
    assert body["client_custom"] is None


def test_invoked_arn_with_qualifier(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    _, body = invoke(lambda_client, fn, {"tag": "qualified"}, Qualifier="$LATEST")
    assert body["invoked_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fn}:$LATEST"


def test_unhandled_error_returns_the_clients_error_body(lambda_client: Any,
                                                        ric_function: tuple[RicCase, str]) -> None:
    case, fn = ric_function
    resp, body = invoke(lambda_client, fn, {"tag": "error", "fail": "on purpose"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "boom: on purpose"
    if case.name == "awslambdaric":
        assert body["errorType"] == "ValueError"
        assert body["requestId"] == resp["ResponseMetadata"]["RequestId"]
        assert any("/var/task/app.py" in line for line in body["stackTrace"])
    else:
        assert body["errorType"] == "Error"
        assert body["trace"][0] == "Error: boom: on purpose"
        assert any("/var/task/app.mjs" in line for line in body["trace"])


def test_client_context_passed_through(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    client_context = {"custom": {"user": "u-1", "tier": "gold"}, "env": {"locale": "en"}, "client": {}}
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()
    _, body = invoke(lambda_client, fn, {"tag": "cc"}, ClientContext=encoded)
    assert body["client_custom"] == {"user": "u-1", "tier": "gold"}


def test_log_tail_has_handler_output(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    case, fn = ric_function
    resp, _ = invoke(lambda_client, fn, {"tag": "tail-me"}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    request_id = resp["ResponseMetadata"]["RequestId"]
    if case.name == "awslambdaric":
        assert "ric-log-line from python tail-me" in log
    else:
        # aws-lambda-ric prefixes console output with a timestamp, the request id and the level
        line = next(x for x in log.splitlines() if "ric-log-line from node tail-me" in x)
        assert f"\t{request_id}\tINFO\t" in line


def test_second_invoke_is_warm(lambda_client: Any, ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    _, first = invoke(lambda_client, fn, {"tag": "one"})
    second_resp, second = invoke(lambda_client, fn, {"tag": "two"})
    assert second["event"] == {"tag": "two"}
    assert second["pid"] == first["pid"]
    assert second["invocations"] == first["invocations"] + 1
    assert second["request_id"] != first["request_id"]
    assert second_resp["ResponseMetadata"]["RequestId"] == second["request_id"]


def test_error_then_success_in_same_environment(lambda_client: Any,
                                                ric_function: tuple[RicCase, str]) -> None:
    _, fn = ric_function
    _, ok = invoke(lambda_client, fn, {"tag": "before"})
    err_resp, _ = invoke(lambda_client, fn, {"tag": "err", "fail": "once"})
    assert err_resp["FunctionError"] == "Unhandled"
    resp, after = invoke(lambda_client, fn, {"tag": "after"})
    assert "FunctionError" not in resp
    assert after["pid"] == ok["pid"]
    assert after["invocations"] == ok["invocations"] + 2
