"""Invoke benchmark: cold start, warm latency (boto3 and raw HTTP), warm throughput.

    .venv/bin/python bench/invoke.py                 # starts its own server on a temp data dir
    .venv/bin/python bench/invoke.py --endpoint http://127.0.0.1:3001

Raw-HTTP clients sign one request with botocore's SigV4 signer and replay it over a
keep-alive connection (a signature stays valid for five minutes), so the load generator
spends its CPU on HTTP, not on signing. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROLE = "arn:aws:iam::000000000000:role/bench"
HELLO = "def handler(event, context):\n    return {'ok': True}\n"
REGION = "us-east-1"


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o100644 << 16  # readable by the function's uid, as Lambda requires
        zf.writestr(info, source)
    return buf.getvalue()


def _client(endpoint: str) -> Any:
    return boto3.client("lambda", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 1}, max_pool_connections=64))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _create(client: Any, name: str, memory: int = 128) -> None:
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": _zip(HELLO)}, MemorySize=memory)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def cold(client: Any, runs: int) -> dict[str, float]:
    totals, inits = [], []
    for _ in range(runs):
        name = f"bench-cold-{uuid.uuid4().hex[:8]}"
        _create(client, name)
        t0 = time.perf_counter()
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        totals.append((time.perf_counter() - t0) * 1000)
        if "FunctionError" in resp:
            raise SystemExit(f"the benchmark function failed: {resp['Payload'].read()!r}")
        import base64
        tail = base64.b64decode(resp["LogResult"]).decode()
        init = [p for p in tail.split("\t") if p.startswith("Init Duration:")]
        if init:
            inits.append(float(init[0].split()[2]))
        client.delete_function(FunctionName=name)
    return {"cold_p50_ms": statistics.median(totals), "cold_p90_ms": _percentile(totals, 0.9),
            "init_duration_p50_ms": statistics.median(inits) if inits else float("nan")}


def warm_boto3(client: Any, name: str, n: int) -> dict[str, float]:
    for _ in range(50):
        if "FunctionError" in client.invoke(FunctionName=name, Payload=b"{}"):
            raise SystemExit("the benchmark function failed")
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"warm_boto3_p50_ms": statistics.median(samples), "warm_boto3_p99_ms": _percentile(samples, 0.99)}


def _signed(endpoint: str, name: str) -> tuple[str, dict[str, str], bytes]:
    url = f"{endpoint}/2015-03-31/functions/{name}/invocations"
    body = b"{}"
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("test", "test"), "lambda", REGION).add_auth(request)
    return urlsplit(url).path, dict(request.headers.items()), body


def _raw_worker(endpoint: str, name: str, seconds: float, out: Any, latencies: bool) -> None:
    path, headers, body = _signed(endpoint, name)
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count, samples = 0, []
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 > deadline:
            break
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"HTTP {resp.status}")
        count += 1
        if latencies:
            samples.append((time.perf_counter() - t0) * 1000)
    out.put((count, samples))


def raw(endpoint: str, name: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_raw_worker, args=(endpoint, name, seconds, queue, True)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(c for c, _ in results)
    samples = [s for _, ss in results for s in ss]
    return total / seconds, samples


def _start_server(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str, str]:
    """A `lamina serve` on a free port and a temporary data dir: (process, endpoint, data dir)."""
    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lamina = os.path.join(os.path.dirname(sys.executable), "lamina")
    proc = subprocess.Popen([lamina, "serve", "--port", str(port), "--data-dir", data_dir],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/_lamina/health", timeout=1)
            return proc, endpoint, data_dir
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


@contextlib.contextmanager
def lamina_server(endpoint: str | None, env: dict[str, str] | None = None) -> Iterator[tuple[str, int | None]]:
    """The given endpoint, or a server of the benchmark's own for as long as it runs:
    yields (endpoint, that server's pid or None)."""
    if endpoint is not None:
        yield endpoint, None
        return
    proc, endpoint, data_dir = _start_server(env)
    try:
        yield endpoint, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--cold", type=int, default=15)
    parser.add_argument("--warm", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with lamina_server(args.endpoint) as (endpoint, _pid):
        client = _client(endpoint)
        results: dict[str, Any] = {}
        results.update(cold(client, args.cold))
        name = f"bench-warm-{uuid.uuid4().hex[:8]}"
        _create(client, name)
        results.update(warm_boto3(client, name, args.warm))
        _, samples = raw(endpoint, name, 1, args.seconds)
        results["warm_raw_p50_ms"] = statistics.median(samples)
        results["warm_raw_p99_ms"] = _percentile(samples, 0.99)
        for clients in (8,):
            rate, samples = raw(endpoint, name, clients, args.seconds)
            results[f"throughput_{clients}_clients_per_s"] = rate
            results[f"latency_{clients}_clients_p50_ms"] = statistics.median(samples)
            results[f"latency_{clients}_clients_p99_ms"] = _percentile(samples, 0.99)
        print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
