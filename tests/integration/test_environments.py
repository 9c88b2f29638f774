"""Execution environment lifecycle as AWS Lambda documents it.

An environment runs one invocation at a time, is reused while warm (module state survives,
no Init Duration), never serves code or configuration older than the invocation's, is
replaced after a timeout or crash, and is shut down after being idle.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROLE, LaminaServer, make_zip

Fn = Callable[..., str]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Reports which environment served the call and how many calls it has served.
PROBE = """import os, time, uuid
ENV_ID = uuid.uuid4().hex
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get('sleep'):
        time.sleep(event['sleep'])
    if event.get('exit') is not None:
        os._exit(event['exit'])
    if event.get('sys_exit') is not None:
        import sys
        sys.exit(event['sys_exit'])
    return {'env': ENV_ID, 'count': COUNT, 'version': VERSION, 'var': os.environ.get('MY_VAR')}
"""


@pytest.fixture(scope="module", params=["spawned", "forked"])
def server(request: pytest.FixtureRequest, server: LaminaServer, forking_server: LaminaServer) -> LaminaServer:
    """Every lifecycle test runs against environments started afresh and against
    environments forked from a zygote."""
    return server if request.param == "spawned" else forking_server


@pytest.fixture(scope="module")
def lambda_client(server: LaminaServer) -> Any:
    return server.client()


def probe(version: str = "v1") -> dict[str, str | bytes]:
    return {"app.py": PROBE + f"VERSION = {version!r}\n"}


def call(client: Any, name: str, event: dict[str, Any] | None = None,
         tail: bool = True) -> tuple[dict[str, Any], Any, str]:
    """Invoke with LogType=Tail; returns (response, decoded JSON body, decoded log tail)."""
    kwargs: dict[str, Any] = {"LogType": "Tail"} if tail else {}
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    body = json.loads(resp["Payload"].read())
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace") if tail else ""
    return resp, body, log


def wait_updated(client: Any, name: str) -> None:
    client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})


def report_line(log: str, rid: str) -> str:
    for line in log.splitlines():
        if line.startswith(f"REPORT RequestId: {rid}\t"):
            return line
    raise AssertionError(f"no REPORT line for {rid}: {log!r}")


def is_cold(resp: dict[str, Any], log: str) -> bool:
    return "\tInit Duration: " in report_line(log, resp["ResponseMetadata"]["RequestId"])


# --- warm reuse ---------------------------------------------------------------------------------


def test_warm_environment_is_reused(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(probe())
    r1, b1, log1 = call(lambda_client, fn)
    assert b1["count"] == 1
    assert is_cold(r1, log1)
    r2, b2, log2 = call(lambda_client, fn)
    assert b2["env"] == b1["env"], "a warm environment must be reused"
    assert b2["count"] == 2
    assert not is_cold(r2, log2)
    r3, b3, log3 = call(lambda_client, fn)
    assert (b3["env"], b3["count"]) == (b1["env"], 3)
    assert not is_cold(r3, log3)


def test_idle_environment_is_frozen(lambda_client: Any, create_function: Fn) -> None:
    # as on Lambda, nothing runs between invocations: a background thread stops with them
    code = ("import threading, time\nTICKS = 0\nSTARTED = False\n\n"
            "def tick():\n    global TICKS\n    while True:\n        time.sleep(0.01)\n        TICKS += 1\n\n"
            "def handler(event, context):\n    global STARTED\n    if not STARTED:\n"
            "        STARTED = True\n        threading.Thread(target=tick, daemon=True).start()\n"
            "        time.sleep(0.2)\n    return TICKS\n")
    fn = create_function({"app.py": code})
    _, before, _ = call(lambda_client, fn)
    assert before > 0, "the thread runs while the invocation does"
    time.sleep(1.5)
    _, after, _ = call(lambda_client, fn)
    assert after - before < 30, f"the thread ran {after - before} ticks while the environment was idle"


def test_tmp_persists_while_warm(lambda_client: Any, create_function: Fn) -> None:
    code = (
        "import os\n"
        "def handler(event, context):\n"
        "    path = '/tmp/marker'\n"
        "    seen = os.path.exists(path)\n"
        "    open(path, 'w').write('x')\n"
        "    return seen\n"
    )
    fn = create_function({"app.py": code})
    assert call(lambda_client, fn, tail=False)[1] is False
    assert call(lambda_client, fn, tail=False)[1] is True


# --- updates never serve stale code or configuration ----------------------------------------------


def test_code_update_is_seen_by_the_next_invoke(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(probe("v1"))
    _, b1, _ = call(lambda_client, fn)
    assert b1["version"] == "v1"
    for version in ("v2", "v3"):
        lambda_client.update_function_code(FunctionName=fn, ZipFile=make_zip(probe(version)))
        wait_updated(lambda_client, fn)
        resp, body, log = call(lambda_client, fn)
        assert body["version"] == version, "an invoke after the update must never run older code"
        assert body["env"] != b1["env"]
        assert is_cold(resp, log)
        # and the environment on the new code is then reused
        _, again, _ = call(lambda_client, fn)
        assert (again["version"], again["env"]) == (version, body["env"])


def test_configuration_update_is_seen_by_the_next_invoke(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(probe(), Environment={"Variables": {"MY_VAR": "first"}})
    _, b1, _ = call(lambda_client, fn)
    assert b1["var"] == "first"
    lambda_client.update_function_configuration(
        FunctionName=fn, Environment={"Variables": {"MY_VAR": "second"}})
    wait_updated(lambda_client, fn)
    _, b2, _ = call(lambda_client, fn)
    assert b2["var"] == "second"
    assert b2["env"] != b1["env"]


def test_memory_update_is_seen_by_the_next_invoke(lambda_client: Any, create_function: Fn) -> None:
    code = "def handler(event, context):\n    return context.memory_limit_in_mb\n"
    fn = create_function({"app.py": code}, MemorySize=128)
    assert str(call(lambda_client, fn, tail=False)[1]) == "128"
    lambda_client.update_function_configuration(FunctionName=fn, MemorySize=256)
    wait_updated(lambda_client, fn)
    resp, body, log = call(lambda_client, fn)
    assert str(body) == "256"
    assert "\tMemory Size: 256 MB\t" in report_line(log, resp["ResponseMetadata"]["RequestId"])


# --- concurrency: one invocation per environment ---------------------------------------------------


def test_concurrent_invokes_get_their_own_environments(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(probe(), Timeout=10)
    n = 4

    def one(_: int) -> dict[str, Any]:
        result: dict[str, Any] = call(lambda_client, fn, {"sleep": 1}, tail=False)[1]
        return result

    started = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    elapsed = time.monotonic() - started
    envs = {r["env"] for r in results}
    assert len(envs) == n, f"each concurrent invocation needs its own environment: {results}"
    assert all(r["count"] == 1 for r in results)
    assert elapsed < 3.0, f"{n} parallel 1 s invokes took {elapsed:.2f} s: they were serialised"

    # afterwards the warm environments are reused, never two invocations at once in one
    with ThreadPoolExecutor(n) as pool:
        again = list(pool.map(one, range(n)))
    assert {r["env"] for r in again} == envs, "warm environments are reused"
    assert sorted(r["count"] for r in again) == [2] * n


# --- timeout ----------------------------------------------------------------------------------


def test_timeout(lambda_client: Any, create_function: Fn) -> None:
    fn = create_function(probe(), Timeout=1)
    _, first, _ = call(lambda_client, fn)  # warm it up
    started = time.monotonic()
    resp, body, log = call(lambda_client, fn, {"sleep": 5})
    elapsed = time.monotonic() - started
    rid = resp["ResponseMetadata"]["RequestId"]
    assert elapsed < 3.0, f"a 1 s timeout answered after {elapsed:.2f} s"
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert body == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
    }
    stamp = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z "
    assert re.search(stamp + rid + r" Task timed out after 1\.00 seconds", log), log
    report = report_line(log, rid)
    assert "\tStatus: timeout" in report
    duration = float(re.search(r"\tDuration: (\d+\.\d{2}) ms", report)[1])  # type: ignore[index]
    assert 990 <= duration < 1500

    # the next invoke works, in a new environment (cold start)
    resp2, body2, log2 = call(lambda_client, fn)
    assert "FunctionError" not in resp2
    assert body2["env"] != first["env"]
    assert body2["count"] == 1
    assert is_cold(resp2, log2)


# --- crashes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"exit": 1}, "Runtime exited with error: exit status 1"),
        ({"exit": 3}, "Runtime exited with error: exit status 3"),
        ({"sys_exit": 0}, "Runtime exited without providing a reason"),
    ],
    ids=["exit-1", "exit-3", "sys-exit-0"],
)
def test_crash_in_handler(lambda_client: Any, create_function: Fn, event: dict[str, Any],
                          reason: str) -> None:
    fn = create_function(probe())
    _, first, _ = call(lambda_client, fn)
    resp, body, log = call(lambda_client, fn, event)
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {rid} Error: {reason}"}
    report = report_line(log, rid)
    assert "\tStatus: error\tError Type: Runtime.ExitError" in report
    # the next invoke works, in a fresh environment
    resp2, body2, log2 = call(lambda_client, fn)
    assert "FunctionError" not in resp2
    assert body2["env"] != first["env"] and body2["count"] == 1
    assert is_cold(resp2, log2)


def test_crash_during_init(lambda_client: Any, create_function: Fn) -> None:
    code = "import os\nos._exit(2)\ndef handler(event, context):\n    return 1\n"
    fn = create_function({"app.py": code})
    resp, body, _ = call(lambda_client, fn)
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 2"}
    # and again: a broken init is retried on every invoke, not cached as a dead environment
    resp2, body2, _ = call(lambda_client, fn)
    assert body2["errorType"] == "Runtime.ExitError"
    assert resp2["ResponseMetadata"]["RequestId"] in body2["errorMessage"]


# --- idle reaping ---------------------------------------------------------------------------------


@pytest.fixture
def short_idle_server(tmp_path: Path) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path / "data", env={"LAMINA_IDLE_TIMEOUT": "1"})
    srv.start()
    yield srv
    srv.stop()


def test_idle_environment_is_reaped(short_idle_server: LaminaServer,
                                    unique_name: Callable[[str], str]) -> None:
    client = short_idle_server.client()
    fn = unique_name("idle")
    client.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip(probe())})
    client.get_waiter("function_active_v2").wait(
        FunctionName=fn, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    r1, b1, log1 = call(client, fn)
    assert is_cold(r1, log1)
    r2, b2, log2 = call(client, fn)  # right away: still warm
    assert not is_cold(r2, log2) and b2["env"] == b1["env"]
    time.sleep(3)
    r3, b3, log3 = call(client, fn)
    assert is_cold(r3, log3), "an environment idle for longer than the idle timeout must be shut down"
    assert b3["env"] != b1["env"] and b3["count"] == 1


# --- the process that starts sandboxes ------------------------------------------------------------


def _spawners(server_pid: int) -> list[int]:
    """Pids of the server's spawner helper (a child of the server)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(server_pid) and b"lamina.sandbox.spawner" in cmdline:
            found.append(int(status.parent.name))
    return found


def test_environments_start_after_the_spawner_is_killed(short_idle_server: LaminaServer,
                                                         unique_name: Callable[[str], str]) -> None:
    client = short_idle_server.client()
    assert short_idle_server.proc is not None
    server_pid = short_idle_server.proc.pid
    fn = unique_name("spawner")
    client.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip(probe())})
    client.get_waiter("function_active_v2").wait(
        FunctionName=fn, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    _, b1, _ = call(client, fn, {"exit": 5})
    assert "exit status 5" in b1["errorMessage"], "the exit status reaches the server"
    spawners = _spawners(server_pid)
    assert len(spawners) == 1
    os.kill(spawners[0], signal.SIGKILL)
    r2, b2, log2 = call(client, fn)
    assert "FunctionError" not in r2 and b2["count"] == 1 and is_cold(r2, log2)
    assert len(_spawners(server_pid)) == 1, "a new spawner replaces the dead one"
