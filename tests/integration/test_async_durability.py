"""Acknowledged asynchronous events survive `kill -9` of the server: 1,000 events accepted
from 8 clients, the server killed while most are still queued or running, restarted on the
same data dir, and every acknowledged event processed at least once (each success is
recorded to an SQS queue on moto's server, which lives on through the crash)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REGION, ROLE, LaminaServer, make_zip
from tests.integration.sqs_peer import SqsPeer

EVENTS = 1000
CLIENTS = 8
HANDLER = (
    "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(0.02)\n"
    "    return event['i']\n"
)


@pytest.fixture
def sqs_peer(tmp_path: Path) -> Iterator[SqsPeer]:
    peer = SqsPeer(tmp_path / "moto.log")
    yield peer
    peer.stop()


def succeeded(server: LaminaServer, name: str) -> int:
    data = server.status()
    entry = (data["functions"].get(f"{REGION}/{name}") or {}).get("async") or {}
    return int(entry.get("succeeded", 0))


def test_accepted_events_survive_kill_9(tmp_path: Path, sqs_peer: SqsPeer) -> None:
    url, arn = sqs_peer.queue(f"done-{uuid.uuid4().hex[:8]}")
    env = {"LAMINA_SQS_ENDPOINT": sqs_peer.url, "LAMINA_ASYNC_RETRY_DELAYS": "0.2"}
    server = LaminaServer(tmp_path / "data", env=env)
    server.start()
    name = f"durable-{uuid.uuid4().hex[:8]}"
    try:
        client = server.client()
        client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": make_zip({"app.py": HANDLER})})
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
        client.put_function_event_invoke_config(FunctionName=name,
                                                DestinationConfig={"OnSuccess": {"Destination": arn}})
        clients = [server.client() for _ in range(CLIENTS)]

        def send(i: int) -> str:
            answer: dict[str, Any] = clients[i % CLIENTS].invoke(
                FunctionName=name, InvocationType="Event", Payload=json.dumps({"i": i}).encode())
            assert answer["StatusCode"] == 202
            return str(answer["ResponseMetadata"]["RequestId"])

        with ThreadPoolExecutor(CLIENTS) as pool:
            accepted = set(pool.map(send, range(EVENTS)))
        done_before_kill = succeeded(server, name)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    finally:
        server.stop()
    assert len(accepted) == EVENTS
    assert done_before_kill < EVENTS, "the crash must interrupt delivery for the test to mean anything"

    restarted = LaminaServer(tmp_path / "data", env=env)
    restarted.start()
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 180
        while not accepted <= seen and time.monotonic() < deadline:
            for body in sqs_peer.bodies(url, count=EVENTS, timeout=5):
                seen.add(body["requestContext"]["requestId"])
        missing = accepted - seen
        assert not missing, f"{len(missing)} acknowledged events were never processed (e.g. {sorted(missing)[:3]})"
    finally:
        restarted.stop()
