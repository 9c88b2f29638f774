"""Filling the host's disk: with a function's log, and with environments' /tmp.

A function's output goes to its log on the host, and each environment's /tmp is an image
on the host's disk of the function's EphemeralStorage size. Each test performs the attack
against a server of its own with small limits (a 1 MB log cap, 2 GB of disk for /tmp)
and checks that the limit held: the log stays under its cap, says what it dropped and
keeps the newest lines, and goes with the function; environments that would need more
disk than there is are throttled as AWS throttles (idle ones of other functions are
evicted first), and asynchronous events wait instead of being lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import LAMINA, REGION, ROLE, LaminaServer, make_zip
from tests.integration.conftest import FAST_WAIT, assert_aws_error

LOG_CAP = 1024 * 1024
DISK_MB = 2048
DROPPED = b"oldest log lines were dropped"

# Prints `mb` MB of numbered 1 KiB lines, then a last line naming the invocation.
FLOOD = {"app.py": (
    "import sys, time\n"
    "def handler(event, context):\n"
    "    for block in range(event.get('mb', 0)):\n"
    "        sys.stdout.write(''.join(f'{block:05d}-{i:04d} ' + 'x' * 1012 + '\\n' for i in range(1024)))\n"
    "    print('last line of', event['tag'])\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    print('after the sleep of', event['tag'])\n"
    "    return event['tag']\n"
)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina-disk") / "data",
                       env={"LAMINA_LOG_MAX_MB": "1", "LAMINA_DISK_CAPACITY_MB": str(DISK_MB)})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: LaminaServer) -> Any:
    return server.client(max_pool_connections=20)


@pytest.fixture
def function(client: Any, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def create(**kwargs: Any) -> str:
        name = unique_name("")
        client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": make_zip(FLOOD)}, **{"Timeout": 30, **kwargs})
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
        created.append(name)
        return name

    yield create
    for name in created:
        with contextlib.suppress(ClientError):
            client.delete_function(FunctionName=name)


def invoke(client: Any, name: str, **event: Any) -> dict[str, Any]:
    tag = event.setdefault("tag", uuid.uuid4().hex)
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert json.loads(resp["Payload"].read()) == tag and "FunctionError" not in resp
    return dict(resp)


def segments(server: LaminaServer, name: str) -> list[Path]:
    active = server.data_dir / "logs" / REGION / f"{name}.log"
    return [active.with_name(active.name + ".1"), active]


def lamina_logs(server: LaminaServer, name: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(LAMINA), "logs", name, "--data-dir", str(server.data_dir)],
                          capture_output=True, timeout=30)


def status(server: LaminaServer) -> dict[str, Any]:
    return server.status()


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# --- the log ----------------------------------------------------------------------------------------


def test_a_flood_of_output_stays_under_the_log_cap(server: LaminaServer, client: Any,
                                                    function: Callable[..., str]) -> None:
    name = function()
    for _ in range(2):
        invoke(client, name, mb=3)  # 6 MB through a 1 MB cap
    tag = uuid.uuid4().hex
    rid = invoke(client, name, tag=tag)["ResponseMetadata"]["RequestId"]

    sizes = [path.stat().st_size for path in segments(server, name)]
    assert sum(sizes) <= LOG_CAP and all(size <= LOG_CAP // 2 for size in sizes), sizes
    result = lamina_logs(server, name)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert DROPPED in out, "the log says that lines were dropped"
    assert out.rstrip(b"\n").splitlines()[-1].startswith(f"REPORT RequestId: {rid}".encode())
    assert f"START RequestId: {rid}".encode() in out and f"last line of {tag}".encode() in out
    numbered = [line[:10] for line in out.splitlines() if line[5:6] == b"-" and line[10:11] == b" "]
    assert numbered[-1] == b"00002-1023" and len(numbered) > 256, "the newest lines are kept"


def test_follow_keeps_following_across_rotations(server: LaminaServer, client: Any,
                                                 function: Callable[..., str]) -> None:
    name = function()
    invoke(client, name)
    proc = subprocess.Popen([str(LAMINA), "logs", name, "--follow", "--data-dir", str(server.data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        out = bytearray()

        def seen(needle: bytes) -> bool:
            for _ in sel.select(0.1):
                out.extend(proc.stdout.read() or b"")  # type: ignore[union-attr]
            return needle in out

        assert wait_for(lambda: seen(b"REPORT RequestId: "), 10), bytes(out)
        for _ in range(3):  # rotations while it follows
            rid = invoke(client, name, mb=1)["ResponseMetadata"]["RequestId"]
            assert wait_for(lambda r=rid: seen(f"REPORT RequestId: {r}".encode()), 10), bytes(out[-2000:])
        assert DROPPED in out
    finally:
        proc.kill()
        proc.wait()


def test_delete_function_removes_its_log(server: LaminaServer, client: Any,
                                         function: Callable[..., str]) -> None:
    name = function()
    for _ in range(3):
        invoke(client, name, mb=1)
    assert all(path.exists() for path in segments(server, name))
    client.delete_function(FunctionName=name)
    assert not any(path.exists() for path in segments(server, name)), "DeleteFunction leaves no log behind"

    # made again under the same name at once: a log of its own, nothing of the old one's
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip(FLOOD)}, Timeout=30)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    rid = invoke(client, name)["ResponseMetadata"]["RequestId"]
    out = lamina_logs(server, name).stdout
    first, second = out.split(b"\n", 2)[:2]  # a new environment's INIT_START, then its first invocation
    assert first.startswith(b"INIT_START ") and second.startswith(f"START RequestId: {rid}".encode()), out[:300]
    assert DROPPED not in out


def test_an_environment_still_running_at_delete_writes_no_log_afterwards(
        server: LaminaServer, client: Any, function: Callable[..., str]) -> None:
    # the invocation outlives its environment (destroyed by the delete) until its timeout, and
    # then writes its timeout, END and REPORT lines
    name = function(Timeout=3)
    tag = uuid.uuid4().hex

    def run() -> None:
        with contextlib.suppress(Exception):  # the invocation ends in an error: its function is gone
            invoke(client, name, tag=tag, sleep=2)

    running = threading.Thread(target=run)
    running.start()
    active = segments(server, name)[1]
    assert wait_for(lambda: active.exists() and f"last line of {tag}".encode() in active.read_bytes(), 10)
    client.delete_function(FunctionName=name)
    running.join(30)
    time.sleep(0.3)
    assert not any(path.exists() for path in segments(server, name)), active.read_bytes()[-500:]


# --- /tmp -----------------------------------------------------------------------------------------


def test_environments_past_the_disk_capacity_are_throttled_after_evicting_idle_ones(
        server: LaminaServer, client: Any, function: Callable[..., str]) -> None:
    if status(server).get("tmp_backing") == "memory":
        pytest.skip("no loop devices here: /tmp is a tmpfs, accounted as memory")
    a, b, c = (function(EphemeralStorage={"Size": DISK_MB // 2}) for _ in range(3))
    invoke(client, a)
    invoke(client, b)
    assert status(server)["disk_reserved_mb"] == DISK_MB, "two idle environments hold all the disk"

    invoke(client, c)  # the least recently used idle environment (a's) makes room
    functions = status(server)["functions"]
    assert functions[f"{REGION}/{a}"]["environments"]["idle"] == 0
    assert functions[f"{REGION}/{b}"]["environments"]["idle"] == 1
    assert status(server)["disk_reserved_mb"] == DISK_MB

    with ThreadPoolExecutor(2) as pool:  # busy environments are never evicted
        busy = [pool.submit(invoke, client, name, sleep=2) for name in (b, c)]
        assert wait_for(lambda: status(server)["concurrent_executions"] == 2, 10)
        started = time.monotonic()
        with pytest.raises(ClientError) as throttle:
            invoke(client, a)
        assert time.monotonic() - started < 1.0, "refused at once, not queued"
        assert_aws_error(throttle.value, 429, "TooManyRequestsException", "Rate Exceeded.")
        assert throttle.value.response.get("Reason") == "ConcurrentInvocationLimitExceeded"
        assert throttle.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"].isdigit()

        # an asynchronous event meanwhile waits for room instead of being lost
        tag = uuid.uuid4().hex
        accepted = client.invoke(FunctionName=a, InvocationType="Event", Payload=json.dumps({"tag": tag}).encode())
        assert accepted["StatusCode"] == 202
        for future in busy:
            future.result()
    assert wait_for(lambda: f"last line of {tag}".encode() in lamina_logs(server, a).stdout, 20), \
        "the queued event ran once there was room"
    assert status(server)["disk_reserved_mb"] <= DISK_MB
    assert status(server)["functions"][f"{REGION}/{a}"]["throttles"] >= 1


def test_one_environment_bigger_than_the_disk_capacity_is_throttled(
        server: LaminaServer, client: Any, function: Callable[..., str]) -> None:
    if status(server).get("tmp_backing") == "memory":
        pytest.skip("no loop devices here: /tmp is a tmpfs, accounted as memory")
    name = function(EphemeralStorage={"Size": DISK_MB + 512})
    with pytest.raises(ClientError) as throttle:
        invoke(client, name)
    assert_aws_error(throttle.value, 429, "TooManyRequestsException", "Rate Exceeded.")
    assert throttle.value.response.get("Reason") == "ConcurrentInvocationLimitExceeded"
