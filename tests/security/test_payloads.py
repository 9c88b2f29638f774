"""Hostile payloads: events and responses built to break whoever parses them.

An event payload comes from any API caller and a response from any function; both end up
in documents the server builds itself (asynchronous invocation records). A document
nested as deep as AWS allows must never make that fail.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import interpreters
from tests.conftest import REGION, ROLE, LaminaServer, make_zip

DEPTH = 999  # AWS (Jackson) accepts up to 1,000 levels; Python's decoder gives up sooner
DEEP = b"[" * DEPTH + b"]" * DEPTH

# a custom runtime that answers every event with a document as deep as DEPTH
DEEP_ANSWER = (
    f"#!{interpreters.PYTHON}\n"
    "import os, urllib.request\n"
    "api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'\n"
    "while True:\n"
    "    r = urllib.request.urlopen(api + 'next')\n"
    "    rid = r.headers['Lambda-Runtime-Aws-Request-Id']\n"
    "    r.read()\n"
    f"    body = b'[' * {DEPTH} + b']' * {DEPTH}\n"
    "    urllib.request.urlopen(urllib.request.Request(api + rid + '/response', data=body, method='POST')).read()\n"
)
RECORDER = "import json\ndef handler(event, context):\n    print('RECORD', json.dumps(event))\n"


@pytest.fixture
def function(lambda_client: Any) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(files: dict[str, str | bytes], **kwargs: Any) -> str:
        name = f"payload-{uuid.uuid4().hex[:10]}"
        lambda_client.create_function(FunctionName=name, Role=ROLE, Code={"ZipFile": make_zip(files)}, **kwargs)
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
        created.append(name)
        return name

    yield make
    for name in created:
        lambda_client.delete_function(FunctionName=name)


def _records(server: LaminaServer, name: str) -> list[Any]:
    path: Path = server.data_dir / "logs" / REGION / f"{name}.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line[len("RECORD "):]) for line in lines if line.startswith("RECORD ")]


def test_deep_event_and_deep_response_still_make_a_destination_record(
        lambda_client: Any, server: LaminaServer, function: Callable[..., str], python_layer: str) -> None:
    recorder = function({"app.py": RECORDER}, Runtime="python3.11", Handler="app.handler")
    deep = function({"bootstrap": DEEP_ANSWER}, Runtime="provided.al2023", Handler="unused", Layers=[python_layer])
    lambda_client.put_function_event_invoke_config(FunctionName=deep, DestinationConfig={
        "OnSuccess": {"Destination": f"arn:aws:lambda:{REGION}:000000000000:function:{recorder}"}})
    answer = lambda_client.invoke(FunctionName=deep, InvocationType="Event", Payload=DEEP)
    assert answer["StatusCode"] == 202
    deadline = time.monotonic() + 30
    while not (records := _records(server, recorder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(records) == 1, "no record reached the destination"
    record = records[0]
    assert record["requestContext"]["condition"] == "Success"
    # too deep to be re-encoded safely: carried as the text it was
    assert record["requestPayload"] == DEEP.decode()
    assert record["responsePayload"] == DEEP.decode()
    # the server is fine and goes on serving
    sync = lambda_client.invoke(FunctionName=deep, Payload=b"{}")
    assert sync["Payload"].read() == DEEP
