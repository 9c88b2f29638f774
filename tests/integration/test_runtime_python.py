"""Lamina's python3.x runtime, seen through Invoke: the event, context, environment, logs and
error bodies a handler gets must be those of AWS Lambda's managed Python runtime.

Expected values follow AWS's runtime (its developer guide and the behaviour of its runtime
interface client), checked through boto3 against a real Lamina server.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import invoke_raw as invoke
from tests.integration.conftest import request_id, tail

Fn = Callable[..., str]
REGION = "us-east-1"
ACCOUNT = "000000000000"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
NBSP = "\u00a0"


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


# --- events and results -------------------------------------------------------------------------


def test_echo_round_trips_json(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return event\n"})
    for value in [{"a": [1, 2.5, None, True, False]}, "text é 🥳", 12, -0.25, None, [], {"nested": {"x": {}}}]:
        resp, body = invoke(lambda_client, fn, json.dumps(value, ensure_ascii=False).encode())
        assert resp["StatusCode"] == 200
        assert "FunctionError" not in resp, body
        assert json.loads(body) == value


def test_python311_escapes_non_ascii_in_the_response(lambda_client: Any, create_function: Fn) -> None:
    # AWS's python3.11 runtime answers with json's default escaping (3.12 and later do not escape)
    fn = create_function({"app.py": "def handler(event, context):\n    return {'s': 'é🥳'}\n"})
    _, body = invoke(lambda_client, fn)
    assert body == b'{"s": "\\u00e9\\ud83e\\udd73"}'


def test_result_types(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import decimal\n"
        "def handler(event, context):\n"
        "    kind = event['kind']\n"
        "    if kind == 'bytes':\n"
        "        return b'raw \\x00 bytes'\n"
        "    if kind == 'decimal':\n"
        "        return {'price': decimal.Decimal('12.5'), 'count': decimal.Decimal('3')}\n"
        "    if kind == 'tuple':\n"
        "        return (1, 'two')\n"
        "    if kind == 'none':\n"
        "        return None\n"
    )
    fn = create_function({"app.py": code})
    assert invoke(lambda_client, fn, b'{"kind": "bytes"}')[1] == b"raw \x00 bytes"
    assert json.loads(invoke(lambda_client, fn, b'{"kind": "decimal"}')[1]) == {"price": 12.5, "count": 3}
    assert json.loads(invoke(lambda_client, fn, b'{"kind": "tuple"}')[1]) == [1, "two"]
    assert invoke(lambda_client, fn, b'{"kind": "none"}')[1] == b"null"


def test_large_event_and_result(lambda_client: Any, create_function: Fn) -> None:
    code = "def handler(event, context):\n    return {'n': len(event['blob']), 'blob': event['blob']}\n"
    fn = create_function({"app.py": code}, MemorySize=512)
    blob = "x" * (5 * 1024 * 1024)
    resp, body = invoke(lambda_client, fn, json.dumps({"blob": blob}).encode())
    assert "FunctionError" not in resp, body[:300]
    out = json.loads(body)
    assert out["n"] == len(blob)
    assert out["blob"] == blob


def test_handler_in_package_and_subdirectory(lambda_client: Any, create_function: Fn) -> None:
    files: dict[str, str | bytes] = {
        "pkg/__init__.py": "",
        "pkg/mod.py": "def handler(event, context):\n    return __name__\n",
        "src/handlers/entry.py": "def handler(event, context):\n    return __name__\n",
    }
    for handler, module in [("pkg.mod.handler", "pkg.mod"), ("pkg/mod.handler", "pkg.mod"),
                            ("src/handlers/entry.handler", "src.handlers.entry")]:
        fn = create_function(files, handler=handler)
        resp, body = invoke(lambda_client, fn)
        assert "FunctionError" not in resp, body
        assert json.loads(body) == module


def test_module_state_survives_between_invokes(lambda_client: Any, create_function: Fn) -> None:
    code = "COUNT = 0\ndef handler(event, context):\n    global COUNT\n    COUNT += 1\n    return COUNT\n"
    fn = create_function({"app.py": code})
    assert [json.loads(invoke(lambda_client, fn)[1]) for _ in range(3)] == [1, 2, 3]


# --- the context object --------------------------------------------------------------------------------

CONTEXT_CODE = """
import time
def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.2)
    second = context.get_remaining_time_in_millis()
    identity = context.identity
    return {
        'aws_request_id': context.aws_request_id,
        'function_name': context.function_name,
        'function_version': context.function_version,
        'invoked_function_arn': context.invoked_function_arn,
        'memory_limit_in_mb': context.memory_limit_in_mb,
        'log_group_name': context.log_group_name,
        'log_stream_name': context.log_stream_name,
        'client_context': context.client_context,
        'identity_type': type(identity).__name__,
        'identity': [identity.cognito_identity_id, identity.cognito_identity_pool_id],
        'context_type': type(context).__name__,
        'remaining': [first, second],
    }
"""


def test_every_context_field(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": CONTEXT_CODE}, MemorySize=256, Timeout=7)
    resp, body = invoke(lambda_client, fn)
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    assert out["aws_request_id"] == request_id(resp)
    assert re.fullmatch(UUID, out["aws_request_id"])
    assert out["function_name"] == fn
    assert out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"] == arn(fn)
    assert out["memory_limit_in_mb"] == "256"  # AWS's runtime passes the environment's string through
    assert out["log_group_name"] == f"/aws/lambda/{fn}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", out["log_stream_name"]), out
    assert out["client_context"] is None
    assert out["context_type"] == "LambdaContext"
    assert out["identity_type"] == "CognitoIdentity"
    assert out["identity"] == [None, None]
    first, second = out["remaining"]
    assert 0 < second < first <= 7000
    assert first - second >= 190


def test_invoked_function_arn_carries_the_qualifier(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return context.invoked_function_arn\n"})
    _, body = invoke(lambda_client, fn, Qualifier="$LATEST")
    assert json.loads(body) == f"{arn(fn)}:$LATEST"


def test_client_context_reaches_the_handler(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "def handler(event, context):\n"
        "    cc = context.client_context\n"
        "    client = cc.client\n"
        "    return {'type': type(cc).__name__, 'custom': cc.custom, 'env': cc.env,\n"
        "            'client_type': type(client).__name__,\n"
        "            'client': [client.installation_id, client.app_title, client.app_version_name,\n"
        "                       client.app_version_code, client.app_package_name]}\n"
    )
    fn = create_function({"app.py": code})
    ctx = {"custom": {"user": "u-1", "n": 2}, "env": {"locale": "en"},
           "client": {"installation_id": "i-1", "app_title": "title", "app_version_name": "1.0",
                      "app_version_code": "10", "app_package_name": "com.example"}}
    resp, body = invoke(lambda_client, fn, ClientContext=base64.b64encode(json.dumps(ctx).encode()).decode())
    assert "FunctionError" not in resp, body
    assert json.loads(body) == {"type": "ClientContext", "custom": {"user": "u-1", "n": 2}, "env": {"locale": "en"},
                                "client_type": "Client",
                                "client": ["i-1", "title", "1.0", "10", "com.example"]}


# --- environment ---------------------------------------------------------------------------------------------

ENV_CODE = """
import os, sys
def handler(event, context):
    return {'env': dict(os.environ), 'cwd': os.getcwd(), 'path': sys.path[:5]}
"""


def test_environment_variables(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": ENV_CODE}, MemorySize=192,
                         Environment={"Variables": {"MY_SETTING": "value=1", "EMPTY": ""}})
    resp, body = invoke(lambda_client, fn)
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    env = out["env"]
    assert env["MY_SETTING"] == "value=1"
    assert env["EMPTY"] == ""
    expected = {
        "AWS_LAMBDA_FUNCTION_NAME": fn,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "192",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "app.handler",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].endswith("]" + env["AWS_LAMBDA_LOG_STREAM_NAME"][-32:])
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert out["cwd"] == "/var/task"
    assert out["path"] == ["/var/task", "/opt/python/lib/python3.11/site-packages", "/opt/python",
                           "/var/lang/lib/python3.11/site-packages", "/var/runtime"]


# --- logs --------------------------------------------------------------------------------------------------------

LOG_CODE = """
import logging, sys
print('module loaded')
logger = logging.getLogger()
logger.setLevel(logging.INFO)
def handler(event, context):
    print('hello from inside', event['n'])
    sys.stderr.write('to-stderr\\n')
    logger.info('via logging %s', event['n'])
    logging.getLogger('child').warning('a warning')
    logger.debug('not shown at INFO')
    print('no newline at the end', end='')
    return 'ok'
"""


def test_output_and_logging_appear_in_the_tail(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": LOG_CODE})
    resp, body = invoke(lambda_client, fn, b'{"n": 42}', LogType="Tail")
    assert body == b'"ok"'
    rid = request_id(resp)
    lines = tail(resp).splitlines()
    assert "module loaded" in lines, lines  # init output goes to the first invocation's log
    start = lines.index(f"START RequestId: {rid} Version: $LATEST")
    end = next(i for i, line in enumerate(lines) if line.startswith(f"END RequestId: {rid}")
               or line.endswith(f"END RequestId: {rid}"))
    inside = lines[start + 1:end + 1]
    assert inside[0] == "hello from inside 42"
    assert inside[1] == "to-stderr"
    assert re.fullmatch(rf"\[INFO\]\t{TIMESTAMP}\t{rid}\tvia logging 42", inside[2]), inside[2]
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t{rid}\ta warning", inside[3]), inside[3]
    assert not any("not shown" in line for line in lines)
    assert "no newline at the end" in inside[4], "output without a newline is flushed before END"

    # warm: one log line per call (the handler is installed once), and the new request id
    resp2, _ = invoke(lambda_client, fn, b'{"n": 7}', LogType="Tail")
    rid2 = request_id(resp2)
    log2 = tail(resp2)
    assert "module loaded" not in log2
    assert len(re.findall(rf"\[INFO\]\t{TIMESTAMP}\t{rid2}\tvia logging 7\n", log2)) == 1


def test_root_logger_defaults_to_warning(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import logging\n"
        "def handler(event, context):\n"
        "    logging.getLogger().info('info is filtered')\n"
        "    logging.getLogger().error('error is shown')\n"
        "    return logging.getLogger().level\n"
    )
    fn = create_function({"app.py": code})
    resp, body = invoke(lambda_client, fn, LogType="Tail")
    assert json.loads(body) == 30
    log = tail(resp)
    assert "info is filtered" not in log
    assert re.search(rf"^\[ERROR\]\t{TIMESTAMP}\t{request_id(resp)}\terror is shown$", log, re.M), log


# --- function errors -------------------------------------------------------------------------------------------


def test_error_shaped_result_is_just_a_result(lambda_client: Any, create_function: Fn) -> None:
    code = ("def handler(event, context):\n"
            "    return {'errorType': 'Custom', 'errorMessage': 'handled by the function'}\n")
    fn = create_function({"app.py": code})
    resp, body = invoke(lambda_client, fn)
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert json.loads(body) == {"errorType": "Custom", "errorMessage": "handled by the function"}


UNHANDLED_CODE = """class OrderFailed(Exception):
    pass

def check(why):
    raise OrderFailed('Failed: ' + why)

def handler(event, context):
    print('before the failure')
    check(event['why'])
"""


def test_unhandled_exception(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": UNHANDLED_CODE})
    resp, body = invoke(lambda_client, fn, b'{"why": "out of stock"}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    rid = request_id(resp)
    err = json.loads(body)
    assert err == {
        "errorMessage": "Failed: out of stock",
        "errorType": "OrderFailed",
        "requestId": rid,
        "stackTrace": [
            '  File "/var/task/app.py", line 9, in handler\n    check(event[\'why\'])\n',
            '  File "/var/task/app.py", line 5, in check\n    raise OrderFailed(\'Failed: \' + why)\n',
        ],
    }
    log = tail(resp)
    expected = (
        "[ERROR] OrderFailed: Failed: out of stock\n"
        "Traceback (most recent call last):\n"
        f'{NBSP * 2}File "/var/task/app.py", line 9, in handler\n'
        f"{NBSP * 4}check(event['why'])\n"
        f'{NBSP * 2}File "/var/task/app.py", line 5, in check\n'
        f"{NBSP * 4}raise OrderFailed('Failed: ' + why)\n"
    )
    assert expected in log, log
    assert log.index("before the failure") < log.index("[ERROR] OrderFailed") < log.index(f"END RequestId: {rid}")
    # the environment stays usable
    resp2, body2 = invoke(lambda_client, fn, b'{"why": "again"}')
    assert json.loads(body2)["errorMessage"] == "Failed: again"
    assert json.loads(body2)["requestId"] == request_id(resp2)


def test_unserialisable_result_is_a_marshal_error(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"})
    resp, body = invoke(lambda_client, fn, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(body) == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": request_id(resp),
        "stackTrace": [],
    }
    assert ("[ERROR] Runtime.MarshalError: Unable to marshal response: Object of type set is not JSON "
            "serializable\nTraceback (most recent call last):\n") in tail(resp)


# --- init errors ------------------------------------------------------------------------------------------------

INIT_ERRORS: list[tuple[str, dict[str, str | bytes], str, str]] = [
    ("nothere.handler", {"app.py": "def handler(e, c):\n    return 1\n"},
     "Runtime.ImportModuleError", "Unable to import module 'nothere': No module named 'nothere'"),
    ("app.handler", {"app.py": "import not_installed_anywhere\ndef handler(e, c):\n    return 1\n"},
     "Runtime.ImportModuleError", "Unable to import module 'app': No module named 'not_installed_anywhere'"),
    ("app.nope", {"app.py": "def handler(e, c):\n    return 1\n"},
     "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
    ("app", {"app.py": "def handler(e, c):\n    return 1\n"},
     "Runtime.MalformedHandlerName", "Bad handler 'app': not enough values to unpack (expected 2, got 1)"),
    ("sys.handler", {"app.py": "def handler(e, c):\n    return 1\n"},
     "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module"),
]


@pytest.mark.parametrize(("handler", "files", "error_type", "message"), INIT_ERRORS,
                         ids=[case[2] + "-" + case[0] for case in INIT_ERRORS])
def test_init_errors(lambda_client: Any, create_function: Fn, handler: str, files: dict[str, str | bytes],
                     error_type: str, message: str) -> None:
    fn = create_function(files, handler=handler)
    for _ in range(2):  # every invoke of a function whose init fails reports the init error
        resp, body = invoke(lambda_client, fn, LogType="Tail")
        assert resp["StatusCode"] == 200
        assert resp["FunctionError"] == "Unhandled"
        assert json.loads(body) == {"errorMessage": message, "errorType": error_type, "requestId": "",
                                    "stackTrace": []}
    log = tail(resp)
    assert f"[ERROR] {error_type}: {message}\nTraceback (most recent call last):\n" in log, log
    assert re.search(rf"^\[WARNING\]\t{TIMESTAMP}\t\tLAMBDA_WARNING: Unhandled exception\. ", log, re.M), log


def test_syntax_error(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "def handler(event, context):\n    return 1 +\n"})
    resp, body = invoke(lambda_client, fn)
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(body) == {
        "errorMessage": "Syntax error in module 'app': invalid syntax (app.py, line 2)",
        "errorType": "Runtime.UserCodeSyntaxError",
        "requestId": "",
        "stackTrace": ['  File "/var/task/app.py" Line 2\n        return 1 +\n'],
    }


def test_exception_during_module_init(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": "import os\nraise ValueError('startup fails: ' + os.environ['DB_STATE'])\n"},
                         Environment={"Variables": {"DB_STATE": "no database"}})
    resp, body = invoke(lambda_client, fn, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "startup fails: no database"
    assert err["requestId"] == ""
    assert err["stackTrace"][-1] == (
        '  File "/var/task/app.py", line 2, in <module>\n'
        "    raise ValueError('startup fails: ' + os.environ['DB_STATE'])\n"
    )
    assert err["stackTrace"][0].startswith('  File "/usr/lib/python3.11/importlib/__init__.py", line ')
    assert "[ERROR] ValueError: startup fails: no database\nTraceback (most recent call last):\n" in tail(resp)


def test_system_exit_in_handler_ends_the_runtime(lambda_client: Any, create_function: Fn) -> None:
    # like AWS's runtime, only Exception subclasses are reported as function errors
    fn = create_function({"app.py": "import sys\ndef handler(event, context):\n    sys.exit(3)\n"})
    resp, body = invoke(lambda_client, fn)
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"] == f"RequestId: {request_id(resp)} Error: Runtime exited with error: exit status 3"


def test_json_log_format_from_logging_config(lambda_client: Any, create_function: Callable[..., str]) -> None:
    """LoggingConfig LogFormat JSON reaches the runtime: log records become JSON objects,
    filtered by ApplicationLogLevel."""
    code = ("import logging\n"
            "def handler(event, context):\n"
            "    logging.getLogger().info('kept')\n"
            "    logging.getLogger().debug('dropped')\n"
            "    return 1\n")
    name = create_function({"app.py": code},
                           LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "INFO"})
    config = lambda_client.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert config["LogFormat"] == "JSON" and config["ApplicationLogLevel"] == "INFO"
    assert config["LogGroup"] == f"/aws/lambda/{name}"
    response = lambda_client.invoke(FunctionName=name, LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [r["message"] for r in records] == ["kept"]
    assert records[0]["level"] == "INFO"
    assert records[0]["requestId"] == response["ResponseMetadata"]["RequestId"]
