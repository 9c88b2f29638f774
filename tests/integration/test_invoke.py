"""Synchronous Invoke as AWS Lambda answers it: payloads, versions, errors, tails, limits.

Every expectation here is AWS's behaviour (Invoke API reference, the Lambda quotas page,
responses recorded against AWS), checked through boto3 against a real Lamina server.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import interpreters

Fn = Callable[..., str]
ECHO = {"app.py": "def handler(event, context):\n    return event\n"}
ACCOUNT = "000000000000"
REGION = "us-east-1"
MAX_REQUEST = 6 * 1024 * 1024  # 6291456: "Request must be smaller than 6291456 bytes ..."
MAX_RESPONSE = 6 * 1024 * 1024 + 100  # 6291556, as AWS words Function.ResponseSizeTooLarge
PARSE_ERROR = "Could not parse request body into json: Could not parse payload into json"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>" + UUID + r")"
    r"\tDuration: (?P<duration>\d+\.\d{2}) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms"
    r"\tMemory Size: (?P<memory>\d+) MB"
    r"\tMax Memory Used: (?P<used>\d+) MB"
    r"(?:\tInit Duration: (?P<init>\d+\.\d{2}) ms)?"
    r"(?:\tStatus: (?P<status>\w+))?"
    r"(?:\tError Type: (?P<error_type>\S+))?"
    r"\t?$"
)


def invoke(client: Any, name: str, payload: bytes | str | None = None,
           **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    """Invoke and read the body; returns (response, body bytes)."""
    if payload is not None:
        kwargs["Payload"] = payload
    resp = client.invoke(FunctionName=name, **kwargs)
    return resp, resp["Payload"].read()


def tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode("utf-8", errors="replace")


def report_of(log: str, request_id: str) -> re.Match[str]:
    for line in log.splitlines():
        if line.startswith(f"REPORT RequestId: {request_id}"):
            m = REPORT_RE.match(line)
            assert m, f"REPORT line not in AWS's format: {line!r}"
            return m
    raise AssertionError(f"no REPORT line for {request_id} in {log!r}")


def request_id(resp: dict[str, Any]) -> str:
    rid = resp["ResponseMetadata"]["RequestId"]
    assert re.fullmatch(UUID, rid), rid
    return str(rid)


# --- RequestResponse ---------------------------------------------------------------------------


def test_echo_request_response(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    resp, body = invoke(lambda_client, fn, json.dumps({"hello": "world", "n": [1, 2.5, None, True]}))
    assert resp["StatusCode"] == 200
    assert json.loads(body) == {"hello": "world", "n": [1, 2.5, None, True]}
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-executed-version"] == "$LATEST"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "LogResult" not in resp  # only with LogType=Tail


def test_explicit_request_response_type(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    resp, body = invoke(lambda_client, fn, b'{"a": 1}', InvocationType="RequestResponse")
    assert resp["StatusCode"] == 200
    assert json.loads(body) == {"a": 1}


def test_context_and_request_id(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "def handler(event, context):\n"
        "    return {'request_id': context.aws_request_id, 'name': context.function_name,\n"
        "            'version': context.function_version, 'arn': context.invoked_function_arn,\n"
        "            'memory': context.memory_limit_in_mb,\n"
        "            'remaining': context.get_remaining_time_in_millis(),\n"
        "            'log_group': context.log_group_name, 'client_context': context.client_context}\n"
    )
    fn = create_function({"app.py": code}, MemorySize=256, Timeout=7)
    resp, body = invoke(lambda_client, fn, b"{}")
    out = json.loads(body)
    assert out["request_id"] == request_id(resp)
    assert out["name"] == fn
    assert out["version"] == "$LATEST"
    assert out["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
    assert str(out["memory"]) == "256"
    assert 0 < out["remaining"] <= 7000
    assert out["log_group"] == f"/aws/lambda/{fn}"
    assert out["client_context"] is None


def test_handler_returning_none_gives_null(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return None\n"})
    resp, body = invoke(lambda_client, fn, b"{}")
    assert resp["StatusCode"] == 200
    assert body == b"null"


def test_no_payload_gives_empty_object(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    resp, body = invoke(lambda_client, fn)
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert json.loads(body) == {}


JSON_VALUES: list[Any] = [
    {"text": "'\" quotes, an emoji 🥳, brackets {[}}[([])), CJK 漢字, RTL עברית, nul \u0000 esc \u001b"},
    {"nested": {"deep": [[[{"x": -1e-7}]]]}, "big": 2**62, "neg": -0.5},
    True,
    False,
    None,
    [1, 2],
    1,
    "just a string",
]


def test_json_payloads_round_trip(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    for value in JSON_VALUES:
        for ensure_ascii in (True, False):
            resp, body = invoke(lambda_client, fn, json.dumps(value, ensure_ascii=ensure_ascii).encode())
            assert resp["StatusCode"] == 200, value
            assert "FunctionError" not in resp, body
            assert json.loads(body) == value


def test_payload_not_json_is_refused(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.invoke(FunctionName=fn, Payload=b"{not json")
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Code"] == "InvalidRequestContentException"
    assert err["Error"]["Message"].startswith(PARSE_ERROR)


def test_payload_invalid_utf8_is_refused(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.invoke(FunctionName=fn, Payload=b'{"a": "\x87\x9e"}')
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Code"] == "InvalidRequestContentException"
    assert err["Error"]["Message"].startswith(PARSE_ERROR)


# --- DryRun -------------------------------------------------------------------------------------

COUNTER = {
    "app.py": (
        "import uuid\n"
        "ENV_ID = uuid.uuid4().hex\n"
        "COUNT = 0\n"
        "def handler(event, context):\n"
        "    global COUNT\n"
        "    COUNT += 1\n"
        "    return {'count': COUNT, 'env': ENV_ID}\n"
    )
}


def test_dry_run_returns_204_and_does_not_run_handler(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(COUNTER)
    resp, body = invoke(lambda_client, fn, b'{"x": 1}', InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert body == b""
    assert "FunctionError" not in resp
    resp, body = invoke(lambda_client, fn, b"{}")
    assert json.loads(body)["count"] == 1, "the dry run must not have invoked the handler"


def test_dry_run_unknown_function_is_404(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    name = unique_name("nope")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.invoke(FunctionName=name, InvocationType="DryRun")
    assert e.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:$LATEST"
    )


# --- LogType Tail ---------------------------------------------------------------------------------


def test_log_tail_has_start_end_report(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "print('module loaded')\n"
        "def handler(event, context):\n"
        "    print('hello from inside', event['n'])\n"
        "    return 'ok'\n"
    )
    fn = create_function({"app.py": code})
    resp, body = invoke(lambda_client, fn, b'{"n": 42}', LogType="Tail")
    assert body == b'"ok"'
    rid = request_id(resp)
    log = tail(resp)
    lines = log.splitlines()
    start = f"START RequestId: {rid} Version: $LATEST"
    end = f"END RequestId: {rid}"
    assert start in lines
    assert end in lines
    assert "hello from inside 42" in lines
    assert lines.index(start) < lines.index("hello from inside 42") < lines.index(end)
    report_line = next(line for line in lines if line.startswith("REPORT "))
    assert lines.index(end) < lines.index(report_line)
    assert log.endswith("\n")
    assert report_line.endswith("\t"), "AWS ends the REPORT line with a tab"

    m = report_of(log, rid)
    assert m["memory"] == "128"
    assert 0 < int(m["used"]) <= 128
    duration = float(m["duration"])
    assert 0 < duration < 3000
    # a first invoke is a cold start: Init Duration is reported, and (since 2025-08-01) billed
    assert m["init"] is not None
    init = float(m["init"])
    assert 0 < init < 10000
    billed = int(m["billed"])
    assert math.ceil(duration + init) - 1 <= billed <= math.ceil(duration + init) + 1
    assert m["status"] is None

    # the warm invoke that follows: no Init Duration, billed rounded up to the millisecond
    resp2, _ = invoke(lambda_client, fn, b'{"n": 7}', LogType="Tail")
    rid2 = request_id(resp2)
    assert rid2 != rid
    log2 = tail(resp2)
    assert f"START RequestId: {rid2} Version: $LATEST" in log2
    assert "module loaded" not in log2
    m2 = report_of(log2, rid2)
    assert m2["init"] is None
    assert int(m2["billed"]) == math.ceil(float(m2["duration"])) or (
        int(m2["billed"]) == 1 and float(m2["duration"]) < 1
    )
    assert rid not in log2, "the tail holds this invocation's log only"


def test_log_tail_is_last_4kb(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "def handler(event, context):\n"
        "    for i in range(400):\n"
        "        print(f'line {i:04d} ' + 'x' * 40)\n"
        "    print('THE-LAST-LINE')\n"
        "    return 1\n"
    )
    fn = create_function({"app.py": code})
    resp, _ = invoke(lambda_client, fn, b"{}", LogType="Tail")
    raw = base64.b64decode(resp["LogResult"])
    assert 3500 < len(raw) <= 4096
    log = raw.decode()
    rid = request_id(resp)
    assert "START RequestId" not in log, "the beginning is cut, the end is kept"
    assert "line 0000" not in log
    assert "THE-LAST-LINE" in log
    assert f"END RequestId: {rid}" in log
    report_of(log, rid)
    assert log.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {rid}")


def test_log_tail_for_stderr_and_logging(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import logging, sys\n"
        "logger = logging.getLogger()\n"
        "logger.setLevel(logging.INFO)\n"
        "def handler(event, context):\n"
        "    sys.stderr.write('to-stderr\\n')\n"
        "    logger.info('via-logging')\n"
        "    return None\n"
    )
    fn = create_function({"app.py": code})
    resp, _ = invoke(lambda_client, fn, b"{}", LogType="Tail")
    log = tail(resp)
    rid = request_id(resp)
    assert "to-stderr" in log
    # the Python runtime's default logging format: [LEVEL]\ttimestamp\trequest id\tmessage
    logging_line = next(line for line in log.splitlines() if "via-logging" in line)
    assert re.match(r"^\[INFO\]\t\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\t" + rid + r"\tvia-logging$",
                    logging_line), logging_line


# --- ClientContext --------------------------------------------------------------------------------


def test_client_context_reaches_handler(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "def handler(event, context):\n"
        "    cc = context.client_context\n"
        "    return {'custom': cc.custom, 'env': cc.env, 'client': cc.client is not None}\n"
    )
    fn = create_function({"app.py": code})
    ctx = {"custom": {"foo": "bar", "n": 1}, "env": {"fizz": "buzz"},
           "client": {"installation_id": "i-1", "app_title": "t", "app_version_name": "1",
                      "app_version_code": "1", "app_package_name": "p"}}
    resp, body = invoke(lambda_client, fn, b"{}",
                        ClientContext=base64.b64encode(json.dumps(ctx).encode()).decode())
    assert resp["StatusCode"] == 200, body
    out = json.loads(body)
    assert out["custom"] == {"foo": "bar", "n": 1}
    assert out["env"] == {"fizz": "buzz"}
    assert out["client"] is True


# --- function errors ------------------------------------------------------------------------------


def test_unhandled_exception(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "class OrderFailed(Exception):\n"
        "    pass\n"
        "def handler(event, context):\n"
        "    raise OrderFailed('Failed: ' + event['why'])\n"
    )
    fn = create_function({"app.py": code})
    resp, body = invoke(lambda_client, fn, b'{"why": "some_error_msg"}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-function-error"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    err = json.loads(body)
    assert err["errorMessage"] == "Failed: some_error_msg"
    assert err["errorType"] == "OrderFailed"
    assert err["requestId"] == request_id(resp)
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]
    assert any('File "/var/task/app.py", line 4, in handler' in frame for frame in err["stackTrace"])
    log = tail(resp)
    assert "[ERROR] OrderFailed: Failed: some_error_msg" in log
    report_of(log, request_id(resp))
    # the environment survives a handled-by-runtime exception
    _, body2 = invoke(lambda_client, fn, b'{"why": "again"}')
    assert json.loads(body2)["errorMessage"] == "Failed: again"


def test_error_in_module_init(lambda_client: Any, create_function: Fn) -> None:
    code = "raise ValueError('Runtime startup fails')\ndef handler(e, c):\n    return 1\n"
    fn = create_function({"app.py": code})
    resp, body = invoke(lambda_client, fn, b"{}")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "Runtime startup fails"
    assert any("/var/task/app.py" in frame for frame in err["stackTrace"])


def test_missing_module(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO, handler="nothere.handler")
    resp, body = invoke(lambda_client, fn, b"{}")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"] == "Unable to import module 'nothere': No module named 'nothere'"


def test_missing_handler_function(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO, handler="app.nothere")
    resp, body = invoke(lambda_client, fn, b"{}")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "Handler 'nothere' missing on module 'app'"


def test_unserialisable_result(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"})
    resp, body = invoke(lambda_client, fn, b"{}")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "Runtime.MarshalError"
    assert err["errorMessage"].startswith("Unable to marshal response: ")


# --- addressing the function ---------------------------------------------------------------------


ARN_ECHO = {
    "app.py": (
        "def handler(event, context):\n"
        "    return {'arn': context.invoked_function_arn, 'version': context.function_version}\n"
    )
}


def test_invoke_by_every_name_form(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ARN_ECHO)
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"FunctionName": fn}, arn),
        ({"FunctionName": arn}, arn),
        ({"FunctionName": f"{ACCOUNT}:function:{fn}"}, arn),
        ({"FunctionName": f"{arn}:$LATEST"}, f"{arn}:$LATEST"),
        ({"FunctionName": f"{fn}:$LATEST"}, f"{arn}:$LATEST"),
        ({"FunctionName": fn, "Qualifier": "$LATEST"}, f"{arn}:$LATEST"),
        ({"FunctionName": arn, "Qualifier": "$LATEST"}, f"{arn}:$LATEST"),
    ]
    for kwargs, invoked_arn in cases:
        resp = lambda_client.invoke(Payload=b"{}", **kwargs)
        out = json.loads(resp["Payload"].read())
        assert resp["StatusCode"] == 200, kwargs
        assert resp["ExecutedVersion"] == "$LATEST", kwargs
        assert out == {"arn": invoked_arn, "version": "$LATEST"}, kwargs


def test_invoke_unknown_function(lambda_client: Any, unique_name: Callable[[str], str]) -> None:
    name = unique_name("missing")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Invoke names the version it looked for (recorded from AWS), unlike Get/Delete
    assert err["Error"]["Message"] == f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:$LATEST"
    assert err["Type"] == "User"


def test_invoke_unknown_version(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.invoke(FunctionName=fn, Qualifier="42", Payload=b"{}")
    assert e.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}:42"
    )


def test_qualifier_mismatch(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    with pytest.raises(ClientError) as e:
        lambda_client.invoke(FunctionName=f"{fn}:$LATEST", Qualifier="1", Payload=b"{}")
    err = e.value.response
    assert err["Error"]["Code"] == "InvalidParameterValueException"
    assert err["Error"]["Message"] == (
        "The derived qualifier from the function name does not match the specified qualifier.")


def test_invoke_other_region_arn(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.invoke(FunctionName=f"arn:aws:lambda:ap-southeast-1:{ACCOUNT}:function:{fn}",
                             Payload=b"{}")
    assert e.value.response["Error"]["Message"] == (
        f"Functions from 'ap-southeast-1' are not reachable in this region ('{REGION}')"
    )


# --- size limits (Lambda quotas: 6 MB request and response, synchronous) --------------------------


def _json_of_size(size: int) -> bytes:
    body = b'{"a":"' + b"x" * (size - 8) + b'"}'
    assert len(body) == size
    return body


def test_request_of_exactly_6mb_is_accepted(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return len(event['a'])\n"},
                         MemorySize=512)
    resp, body = invoke(lambda_client, fn, _json_of_size(MAX_REQUEST))
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert json.loads(body) == MAX_REQUEST - 8


def test_request_over_6mb_is_refused(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return len(event['a'])\n"})
    with pytest.raises(ClientError) as e:
        lambda_client.invoke(FunctionName=fn, Payload=_json_of_size(MAX_REQUEST + 1))
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"
    assert err["Error"]["Message"] == (
        f"Request must be smaller than {MAX_REQUEST} bytes for the InvokeFunction operation")


def test_large_echo_round_trip(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(ECHO, MemorySize=512)
    payload = _json_of_size(MAX_REQUEST)
    resp, body = invoke(lambda_client, fn, payload)
    assert "FunctionError" not in resp
    assert json.loads(body) == json.loads(payload)


SIZED_RESPONSE = {
    "app.py": (
        "def handler(event, context):\n"
        "    print('generating bytes')\n"
        "    return 'a' * event['n']\n"
    )
}


def test_response_at_the_limit_is_returned(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(SIZED_RESPONSE, MemorySize=512)
    n = MAX_RESPONSE - 2  # the JSON string's quotes make it exactly the limit
    resp, body = invoke(lambda_client, fn, json.dumps({"n": n}))
    assert "FunctionError" not in resp, body[:300]
    assert len(body) == MAX_RESPONSE
    assert body == b'"' + b"a" * n + b'"'


def test_response_over_the_limit_is_an_error(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(SIZED_RESPONSE, MemorySize=512)
    for n in (MAX_RESPONSE - 1, 7 * 1024 * 1024):
        resp, body = invoke(lambda_client, fn, json.dumps({"n": n}), LogType="Tail")
        assert resp["StatusCode"] == 200
        assert resp["FunctionError"] == "Unhandled"
        assert json.loads(body) == {
            "errorMessage":
                f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
        assert "generating bytes" in tail(resp)
    # and the function keeps working
    resp, body = invoke(lambda_client, fn, json.dumps({"n": 3}))
    assert body == b'"aaa"'


# --- other runtimes ------------------------------------------------------------------------------


def test_nodejs_echo(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"index.mjs": "export const handler = async (e) => e;"},
                         runtime="nodejs20.x", handler="index.handler")
    event = json.dumps({"from": "node", "emoji": "🥳"}).encode()
    resp, body = invoke(lambda_client, fn, event, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert json.loads(body) == {"from": "node", "emoji": "🥳"}
    rid = request_id(resp)
    log = tail(resp)
    assert f"START RequestId: {rid} Version: $LATEST" in log
    report_of(log, rid)


def test_nodejs_error(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(
        {"index.mjs": "export const handler = async (e) => { throw new TypeError('bad ' + e.x); };"},
        runtime="nodejs20.x", handler="index.handler")
    resp, body = invoke(lambda_client, fn, b'{"x": "input"}')
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "bad input"
    assert isinstance(err["trace"], list)


# A custom runtime: the bootstrap speaks the Runtime API itself (stdlib only), on the Python a layer brings.
BOOTSTRAP = f"#!{interpreters.PYTHON}\n" + """import http.client, json, os
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
conn = http.client.HTTPConnection(host, int(port))
base = '/2018-06-01/runtime/invocation'
while True:
    conn.request('GET', base + '/next')
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    deadline = r.getheader('Lambda-Runtime-Deadline-Ms')
    arn = r.getheader('Lambda-Runtime-Invoked-Function-Arn')
    print('custom runtime got', rid, flush=True)
    if event.get('fail'):
        body = json.dumps({'errorMessage': 'asked to fail', 'errorType': 'Custom.Failure'})
        conn.request('POST', base + '/' + rid + '/error', body,
                     {'Lambda-Runtime-Function-Error-Type': 'Custom.Failure'})
    else:
        body = json.dumps({'event': event, 'rid': rid, 'deadline': int(deadline), 'arn': arn,
                           'handler': os.environ.get('_HANDLER'),
                           'task_root': os.environ.get('LAMBDA_TASK_ROOT')})
        conn.request('POST', base + '/' + rid + '/response', body)
    conn.getresponse().read()
"""


def test_provided_runtime_bootstrap(lambda_client: Any, create_function: Fn, python_layer: str) -> None:
    fn = create_function({"bootstrap": BOOTSTRAP}, runtime="provided.al2023", handler="my.handler",
                         Layers=[python_layer])
    resp, body = invoke(lambda_client, fn, b'{"k": "v"}', LogType="Tail")
    assert resp["StatusCode"] == 200, body
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    rid = request_id(resp)
    assert out["event"] == {"k": "v"}
    assert out["rid"] == rid
    assert out["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
    assert out["handler"] == "my.handler"
    assert out["task_root"] == "/var/task"
    assert out["deadline"] > 1_000_000_000_000  # epoch milliseconds
    assert f"custom runtime got {rid}" in tail(resp)

    resp, body = invoke(lambda_client, fn, b'{"fail": true}')
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(body) == {"errorMessage": "asked to fail", "errorType": "Custom.Failure"}
