"""`lamina logs`: a function's log as CloudWatch Logs would hold it.

Each invocation contributes `START RequestId: <id> Version: $LATEST`, the function's own
output, `END RequestId: <id>` and the tab-separated `REPORT RequestId: <id>` line.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.conftest import LAMINA, LaminaServer

Fn = Callable[..., str]
PRINTER = {
    "app.py": (
        "def handler(event, context):\n"
        "    print('marker', event['marker'])\n"
        "    return event['marker']\n"
    )
}


def lamina_logs(server: LaminaServer, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAMINA), "logs", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=timeout)


def invoke_marker(client: Any, fn: str, marker: str) -> str:
    resp = client.invoke(FunctionName=fn, Payload=f'{{"marker": "{marker}"}}'.encode())
    assert resp["Payload"].read() == f'"{marker}"'.encode()
    return str(resp["ResponseMetadata"]["RequestId"])


def assert_invocation_logged(out: str, rid: str, marker: str) -> None:
    lines = out.splitlines()
    start_line = f"START RequestId: {rid} Version: $LATEST"
    start = next(i for i, line in enumerate(lines) if line.endswith(start_line))
    printed = next(i for i, line in enumerate(lines) if line.endswith(f"marker {marker}"))
    end = next(i for i, line in enumerate(lines) if line.endswith(f"END RequestId: {rid}"))
    report = next(i for i, line in enumerate(lines) if f"REPORT RequestId: {rid}\tDuration: " in line)
    assert start < printed < end < report, out


def test_logs_prints_function_log(lambda_client: Any, create_function: Fn, server: LaminaServer) -> None:
    fn = create_function(PRINTER)
    other = create_function(PRINTER)
    first, second = f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}"
    rid1 = invoke_marker(lambda_client, fn, first)
    rid2 = invoke_marker(lambda_client, fn, second)
    noise = f"other-{uuid.uuid4().hex[:8]}"
    invoke_marker(lambda_client, other, noise)

    deadline = time.monotonic() + 10
    while True:
        result = lamina_logs(server, fn)
        done = result.returncode == 0 and f"REPORT RequestId: {rid2}" in result.stdout
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    assert_invocation_logged(result.stdout, rid1, first)
    assert_invocation_logged(result.stdout, rid2, second)
    assert result.stdout.index(rid1) < result.stdout.index(rid2), "oldest first"
    assert noise not in result.stdout, "only this function's log"
    report = next(line for line in result.stdout.splitlines() if f"REPORT RequestId: {rid1}" in line)
    assert "\tBilled Duration: " in report and "\tMemory Size: 128 MB\t" in report
    assert "\tInit Duration: " in report  # the first invoke was a cold start


def test_logs_unknown_function_fails(server: LaminaServer) -> None:
    result = lamina_logs(server, f"no-such-function-{uuid.uuid4().hex[:8]}")
    assert result.returncode != 0
    assert result.stderr.strip(), "a failure must say why"


def test_logs_follow_streams_new_invocations(lambda_client: Any, create_function: Fn,
                                            server: LaminaServer) -> None:
    fn = create_function(PRINTER)
    old = f"old-{uuid.uuid4().hex[:8]}"
    invoke_marker(lambda_client, fn, old)
    proc = subprocess.Popen([str(LAMINA), "logs", fn, "--follow", "--data-dir", str(server.data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None
        os.set_blocking(stdout.fileno(), False)
        sel = selectors.DefaultSelector()
        sel.register(stdout, selectors.EVENT_READ)
        out = b""

        def read_for(seconds: float) -> None:
            nonlocal out
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                assert proc.poll() is None, f"`lamina logs --follow` exited: {stderr.read()!r}"
                for _ in sel.select(min(left, 0.1)):
                    chunk = stdout.read()
                    if chunk:
                        out += chunk

        # the follower may need a moment to attach: keep invoking until one invocation shows up live
        deadline = time.monotonic() + 15
        streamed: tuple[str, str] | None = None
        while streamed is None and time.monotonic() < deadline:
            new = f"new-{uuid.uuid4().hex[:8]}"
            rid = invoke_marker(lambda_client, fn, new)
            read_for(1.0)
            if f"REPORT RequestId: {rid}".encode() in out:
                streamed = (rid, new)
        assert streamed is not None, f"no new invocation was streamed: {out.decode(errors='replace')}"
        assert_invocation_logged(out.decode(), *streamed)
    finally:
        proc.kill()
        proc.wait()
