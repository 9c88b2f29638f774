"""Asynchronous invocation benchmark: acknowledged events per second, then delivery rate.

    .venv/bin/python bench/async.py                  # starts its own server on a temp data dir
    .venv/bin/python bench/async.py --clients 8 --seconds 5

1. accept: `--clients` processes send signed `InvocationType=Event` invokes of a trivial
   function over keep-alive connections for `--seconds`; every 202 is an event committed to
   the store (SQLite, synchronous=FULL) before it was acknowledged. The function's reserved
   concurrency is 0 meanwhile, so the events stay queued and the rate is the accept path's.
2. deliver: the reservation is removed and the time until every accepted event has run
   (the server's `succeeded` counter) gives the end-to-end delivery rate.
3. mixed: accept and deliver at once (the rate while the queue drains as it fills).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import socket
import statistics
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from invoke import REGION, _client, _create, _percentile, lamina_server

from lamina.cli.status import fetch_status


def _signed(endpoint: str, name: str) -> tuple[str, dict[str, str], bytes]:
    url = f"{endpoint}/2015-03-31/functions/{name}/invocations"
    body = b'{"n": 1}'
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"})
    SigV4Auth(Credentials("test", "test"), "lambda", REGION).add_auth(request)
    return urlsplit(url).path, dict(request.headers.items()), body


def _sender(endpoint: str, name: str, seconds: float, out: Any) -> None:
    path, headers, body = _signed(endpoint, name)
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count, samples = 0, []
    deadline = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < deadline:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise SystemExit(f"HTTP {resp.status}")
        count += 1
        samples.append((time.perf_counter() - t0) * 1000)
    out.put((count, samples))


def send(endpoint: str, name: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_sender, args=(endpoint, name, seconds, queue)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(c for c, _ in results), [s for _, ss in results for s in ss]


def _succeeded(endpoint: str, name: str) -> int:
    data = fetch_status(endpoint, timeout=10, keys=("test", "test"))  # signed, as the server requires
    return int(((data["functions"].get(f"{REGION}/{name}") or {}).get("async") or {}).get("succeeded", 0))


def _wait_delivered(endpoint: str, name: str, count: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while (done := _succeeded(endpoint, name)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done} of {count} events were delivered")
        time.sleep(0.05)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with lamina_server(args.endpoint) as (endpoint, _pid):
        client = _client(endpoint)
        name = f"bench-async-{uuid.uuid4().hex[:8]}"
        _create(client, name)
        client.invoke(FunctionName=name, Payload=b"{}")  # one warm environment to begin with
        results: dict[str, Any] = {"clients": args.clients}

        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        accepted, samples = send(endpoint, name, args.clients, args.seconds)
        results.update({"accepted_per_s": round(accepted / args.seconds),
                        "accept_p50_ms": round(statistics.median(samples), 2),
                        "accept_p99_ms": round(_percentile(samples, 0.99), 2), "accepted": accepted})

        started = time.monotonic()
        client.delete_function_concurrency(FunctionName=name)
        finished = _wait_delivered(endpoint, name, accepted)
        results["delivered_per_s"] = round(accepted / (finished - started))

        started = time.monotonic()
        more, samples = send(endpoint, name, args.clients, args.seconds)
        finished = _wait_delivered(endpoint, name, accepted + more)
        results.update({"mixed_accepted_per_s": round(more / args.seconds),
                        "mixed_accept_p99_ms": round(_percentile(samples, 0.99), 2),
                        "mixed_drain_s_after_last_accept": round(finished - started - args.seconds, 2)})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
