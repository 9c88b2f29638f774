"""Lamina's nodejs runtime, seen through Invoke: handlers (async, callback, ES module, CommonJS),
context, console format, error bodies and init errors must be those of AWS Lambda's managed
nodejs20.x runtime.

Expected values follow AWS's runtime (its developer guide and the behaviour of its runtime
interface client), checked through boto3 against a real Lamina server.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import invoke_raw as invoke
from tests.integration.conftest import request_id, tail

Fn = Callable[..., str]
RUNTIME = "nodejs20.x"
REGION = "us-east-1"
ACCOUNT = "000000000000"
TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


@pytest.fixture
def node_function(create_function: Fn) -> Fn:
    def create(files: dict[str, str | bytes], handler: str = "index.handler", **kwargs: Any) -> str:
        return create_function(files, runtime=RUNTIME, handler=handler, **kwargs)
    return create


# --- handler styles and module kinds --------------------------------------------------------------

HANDLER_KINDS: list[tuple[str, dict[str, str | bytes], str]] = [
    ("esm-mjs", {"index.mjs": "export const handler = async (event) => ({ kind: 'mjs', event });"}, "index.handler"),
    ("cjs-js", {"index.js": "exports.handler = async (event) => ({ kind: 'js', event });"}, "index.handler"),
    ("cjs-cjs", {"index.cjs": "module.exports.handler = async (event) => ({ kind: 'cjs', event });"},
     "index.handler"),
    ("esm-js-type-module", {
        "package.json": '{"type": "module"}',
        "index.js": "export async function handler(event) { return { kind: 'esm-js', event }; }",
    }, "index.handler"),
    ("nested-dir", {"src/handlers/api.mjs": "export const main = async (event) => ({ kind: 'nested', event });"},
     "src/handlers/api.main"),
    ("nested-property", {"index.js": "exports.routes = { get: async (event) => ({ kind: 'prop', event }) };"},
     "index.routes.get"),
    ("promise", {"index.js": "exports.handler = (event) => Promise.resolve({ kind: 'promise', event });"},
     "index.handler"),
    ("callback", {"index.js": "exports.handler = (event, context, cb) => cb(null, { kind: 'cb', event });"},
     "index.handler"),
]


@pytest.mark.parametrize(("files", "handler", "kind"), [(c[1], c[2], c[0]) for c in HANDLER_KINDS],
                         ids=[c[0] for c in HANDLER_KINDS])
def test_handler_kinds_echo(lambda_client: Any, node_function: Fn, files: dict[str, str | bytes],
                            handler: str, kind: str) -> None:
    fn = node_function(files, handler=handler)
    event = {"n": [1, 2.5, None, True], "text": "é 🥳"}
    resp, body = invoke(lambda_client, fn, json.dumps(event).encode())
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    assert out["event"] == event
    assert out["kind"] == {"esm-mjs": "mjs", "cjs-js": "js", "cjs-cjs": "cjs", "esm-js-type-module": "esm-js",
                           "nested-dir": "nested", "nested-property": "prop", "promise": "promise",
                           "callback": "cb"}[kind]


def test_undefined_result_and_sync_handler_give_null(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.js": (
        "exports.handler = async () => undefined;\n"
        "exports.sync = () => 'a plain return value is ignored without a callback';\n"
    )})
    assert invoke(lambda_client, fn)[1] == b"null"
    fn2 = node_function({"index.js": "exports.sync = () => 'ignored';\n"}, handler="index.sync")
    resp, body = invoke(lambda_client, fn2)
    assert "FunctionError" not in resp
    assert body == b"null"


def test_callback_waits_for_empty_event_loop(lambda_client: Any, node_function: Fn) -> None:
    code = (
        "exports.handler = (event, context, callback) => {\n"
        "  context.callbackWaitsForEmptyEventLoop = event.wait;\n"
        "  const started = Date.now();\n"
        "  setTimeout(() => console.log('timer fired after', Date.now() - started >= 300), 300);\n"
        "  callback(null, { waited: context.callbackWaitsForEmptyEventLoop });\n"
        "};\n"
    )
    fn = node_function({"index.js": code})
    began = time.monotonic()
    resp, body = invoke(lambda_client, fn, b'{"wait": true}', LogType="Tail")
    assert time.monotonic() - began >= 0.3
    assert json.loads(body) == {"waited": True}
    log = tail(resp)
    assert log.index("timer fired after true") < log.index(f"END RequestId: {request_id(resp)}")

    resp, body = invoke(lambda_client, fn, b'{"wait": false}', LogType="Tail")
    assert json.loads(body) == {"waited": False}
    assert "timer fired" not in tail(resp), "the response does not wait for the timer"


def test_async_handler_does_not_wait_for_timers(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": (
        "export const handler = async () => { setTimeout(() => console.log('late timer'), 5000); return 'fast'; };"
    )}, Timeout=30)
    began = time.monotonic()
    resp, body = invoke(lambda_client, fn, LogType="Tail")
    assert json.loads(body) == "fast"
    assert time.monotonic() - began < 4
    assert "late timer" not in tail(resp)


def test_module_state_survives_between_invokes(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": "let count = 0;\nexport const handler = async () => ++count;"})
    assert [json.loads(invoke(lambda_client, fn)[1]) for _ in range(3)] == [1, 2, 3]


# --- context ----------------------------------------------------------------------------------------------

CONTEXT_CODE = """
export const handler = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const second = context.getRemainingTimeInMillis();
  return {
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    identity: context.identity === undefined ? 'undefined' : context.identity,
    clientContext: context.clientContext === undefined ? 'undefined' : context.clientContext,
    callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    helpers: [typeof context.succeed, typeof context.fail, typeof context.done],
    remaining: [first, second],
  };
};
"""


def test_every_context_field(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": CONTEXT_CODE}, MemorySize=256, Timeout=9)
    resp, body = invoke(lambda_client, fn)
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    first, second = out.pop("remaining")
    assert 0 < second < first <= 9000
    assert first - second >= 190
    stream = out.pop("logStreamName")
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", stream), stream
    assert out == {
        "functionName": fn,
        "functionVersion": "$LATEST",
        "invokedFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}",
        "memoryLimitInMB": "256",
        "awsRequestId": request_id(resp),
        "logGroupName": f"/aws/lambda/{fn}",
        "identity": "undefined",
        "clientContext": "undefined",
        "callbackWaitsForEmptyEventLoop": True,
        "helpers": ["function", "function", "function"],
    }


def test_client_context_reaches_the_handler(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": "export const handler = async (e, context) => context.clientContext;"})
    ctx = {"custom": {"user": "u-1"}, "env": {"locale": "en"}, "client": {"installation_id": "i-1"}}
    resp, body = invoke(lambda_client, fn, ClientContext=base64.b64encode(json.dumps(ctx).encode()).decode())
    assert "FunctionError" not in resp, body
    assert json.loads(body) == ctx


def test_environment_variables(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": "export const handler = async () => ({ env: process.env, cwd: process.cwd() });"},
                       Environment={"Variables": {"MY_SETTING": "on"}})
    _, body = invoke(lambda_client, fn)
    out = json.loads(body)
    env = out["env"]
    assert env["MY_SETTING"] == "on"
    expected = {
        "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs20.x",
        "AWS_LAMBDA_FUNCTION_NAME": fn,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": REGION,
        "LAMBDA_TASK_ROOT": "/var/task",
        "_HANDLER": "index.handler",
        "TZ": ":UTC",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert "/opt/nodejs/node_modules" in env["NODE_PATH"].split(":")
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert out["cwd"] == "/var/task"


# --- console -----------------------------------------------------------------------------------------------


def test_console_methods_in_the_tail(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": (
        "console.log('module loaded');\n"
        "export const handler = async (event) => {\n"
        "  console.log('hello', { n: event.n }, 42);\n"
        "  console.info('an info');\n"
        "  console.warn('a warning');\n"
        "  console.error('an error');\n"
        "  console.debug('a debug');\n"
        "  return 'ok';\n"
        "};\n"
    )})
    resp, body = invoke(lambda_client, fn, b'{"n": 7}', LogType="Tail")
    assert body == b'"ok"'
    rid = request_id(resp)
    log = tail(resp)
    assert re.search(rf"^{TIMESTAMP}\tundefined\tINFO\tmodule loaded$", log, re.M), log
    for level, message in [("INFO", "hello { n: 7 } 42"), ("INFO", "an info"), ("WARN", "a warning"),
                           ("ERROR", "an error"), ("DEBUG", "a debug")]:
        assert re.search(rf"^{TIMESTAMP}\t{rid}\t{level}\t{re.escape(message)}$", log, re.M), (message, log)
    assert log.index("hello { n: 7 }") < log.index("an error") < log.index(f"END RequestId: {rid}")


# --- errors ------------------------------------------------------------------------------------------------


def test_thrown_error(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": "export const handler = async (e) => { throw new TypeError('bad ' + e.x); };"})
    resp, body = invoke(lambda_client, fn, b'{"x": "input"}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert list(err) == ["errorType", "errorMessage", "trace"]
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "bad input"
    assert err["trace"][0] == "TypeError: bad input"
    assert err["trace"][1].startswith("    at Runtime.handler (file:///var/task/index.mjs:1:")
    rid = request_id(resp)
    line = next(line for line in tail(resp).splitlines() if "Invoke Error" in line)
    prefix = re.match(rf"^{TIMESTAMP}\t{rid}\tERROR\tInvoke Error \t", line)
    assert prefix, line
    logged = json.loads(line[prefix.end():])
    assert logged["errorType"] == "TypeError"
    assert logged["errorMessage"] == "bad input"
    assert logged["stack"] == err["trace"]


def test_callback_error_and_non_error_values(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.js": (
        "exports.handler = (event, context, callback) => {\n"
        "  if (event.kind === 'error') return callback(new RangeError('out of range'));\n"
        "  if (event.kind === 'string') return callback('just a string');\n"
        "  Promise.reject; throw 'thrown string';\n"
        "};\n"
    )})
    _, body = invoke(lambda_client, fn, b'{"kind": "error"}')
    err = json.loads(body)
    assert (err["errorType"], err["errorMessage"], err["trace"][0]) == ("RangeError", "out of range",
                                                                       "RangeError: out of range")
    resp, body = invoke(lambda_client, fn, b'{"kind": "string"}')
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(body) == {"errorType": "string", "errorMessage": "just a string", "trace": []}
    _, body = invoke(lambda_client, fn, b'{"kind": "throw"}')
    assert json.loads(body) == {"errorType": "string", "errorMessage": "thrown string", "trace": []}


def test_error_shaped_result_is_just_a_result(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": (
        "export const handler = async () => ({ errorType: 'Custom', errorMessage: 'handled by the function' });"
    )})
    resp, body = invoke(lambda_client, fn)
    assert "FunctionError" not in resp
    assert json.loads(body) == {"errorType": "Custom", "errorMessage": "handled by the function"}


def test_unserialisable_result(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.mjs": "export const handler = async () => { const o = {}; o.self = o; return o; };"})
    resp, body = invoke(lambda_client, fn)
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert (err["errorType"], err["errorMessage"]) == ("Error", "Unable to stringify response body")


def test_uncaught_exception_fails_the_invocation_and_the_environment(lambda_client: Any, node_function: Fn) -> None:
    fn = node_function({"index.js": (
        "exports.handler = async (event) => {\n"
        "  if (event.crash) setTimeout(() => { throw new Error('async crash'); }, 0);\n"
        "  await new Promise((resolve) => setTimeout(resolve, 50));\n"
        "  return 'done';\n"
        "};\n"
    )})
    resp, body = invoke(lambda_client, fn, b'{"crash": true}', LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(body)
    assert (err["errorType"], err["errorMessage"]) == ("Error", "async crash")
    assert "\tERROR\tUncaught Exception \t" in tail(resp)
    resp, body = invoke(lambda_client, fn, b"{}")
    assert "FunctionError" not in resp, body
    assert json.loads(body) == "done"


# --- init errors -------------------------------------------------------------------------------------------

INIT_ERRORS: list[tuple[str, dict[str, str | bytes], str, str]] = [
    ("nothere.handler", {"index.mjs": "export const handler = async () => 1;"}, "Runtime.ImportModuleError",
     "Error: Cannot find module 'nothere'\nRequire stack:\n- /var/runtime/index.mjs"),
    ("index.nothere", {"index.mjs": "export const handler = async () => 1;"}, "Runtime.HandlerNotFound",
     "index.nothere is undefined or not exported"),
    ("index.value", {"index.js": "exports.value = 42;"}, "Runtime.HandlerNotFound", "index.value is not a function"),
    ("index", {"index.mjs": "export const handler = async () => 1;"}, "Runtime.MalformedHandlerName", "Bad handler"),
    ("index.handler", {"index.mjs": "export const handler = async () => { return 1 +; };"},
     "Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected token ';'"),
    ("index.handler", {"index.js": "throw new Error('no config');"}, "Error", "no config"),
]


@pytest.mark.parametrize(("handler", "files", "error_type", "message"), INIT_ERRORS,
                         ids=[f"{case[2]}-{i}" for i, case in enumerate(INIT_ERRORS)])
def test_init_errors(lambda_client: Any, node_function: Fn, handler: str, files: dict[str, str | bytes],
                     error_type: str, message: str) -> None:
    fn = node_function(files, handler=handler)
    for _ in range(2):
        resp, body = invoke(lambda_client, fn, LogType="Tail")
        assert resp["StatusCode"] == 200
        assert resp["FunctionError"] == "Unhandled"
        err = json.loads(body)
        assert list(err) == ["errorType", "errorMessage", "trace"]
        assert (err["errorType"], err["errorMessage"]) == (error_type, message)
        assert err["trace"][0] == f"{error_type}: {message.splitlines()[0]}"
    log = tail(resp)
    assert re.search(rf"^{TIMESTAMP}\tundefined\tERROR\tUncaught Exception \t\{{\"errorType\":\"{error_type}\"",
                     log, re.M), log
