"""Runtime API flood benchmark: one function's warm latency while another floods its Runtime API.

    .venv/bin/python bench/runtime_flood.py                    # starts its own server, ~60 s
    .venv/bin/python bench/runtime_flood.py --seconds 5 --attack body --attack pipeline
    .venv/bin/python bench/runtime_flood.py --endpoint http://127.0.0.1:3001 --server-pid 1234

A victim function (hello world, 128 MB) is invoked by one raw keep-alive HTTP client (a
request signed once and replayed, as in invoke.py) alone, then while an attacker function
(1,024 MB, so that it may take a whole core) runs one attack for the whole measurement: code
inside its sandbox opening sockets to its own Runtime API at 127.0.0.1:9001 from several
threads, reconnecting whenever the server closes on it. Prints one JSON document: the
victim's p50/p99/max and failures per phase, the server's peak RSS during each phase (read from
/proc, so only for a server on this machine), and what the attacker managed to send.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from invoke import REGION, ROLE, _client, _create, _percentile, _signed, _zip, lamina_server

# Runs inside the attacker's sandbox. Every attack loops until its deadline and reconnects when
# the server closes the connection, so a server that cuts attackers off sees the attack again at
# full rate (the worst case for its CPU), never a quiet attacker.
ATTACKER = r'''
import os, socket, threading, time

HOST, _, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
API = b"/2018-06-01/runtime/"


def connect():
    sock = socket.create_connection((HOST, int(PORT)), timeout=2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def endless(head, filler, deadline, stats):
    """`head`, then `filler` over and over on one connection; a new one when it is closed."""
    while time.monotonic() < deadline:
        try:
            with connect() as sock:
                sock.sendall(head)
                while time.monotonic() < deadline:
                    sock.sendall(filler)
                    stats["sent"] += len(filler)
        except OSError:
            stats["closed"] += 1
            time.sleep(0.001)


def round_trips(deadline, stats):
    """Well-formed requests as fast as the answers come back, on keep-alive connections."""
    request = b"GET " + API + b"invocation/not-a-request/nope HTTP/1.1\r\nHost: x\r\n\r\n"
    while time.monotonic() < deadline:
        try:
            with connect() as sock:
                while time.monotonic() < deadline:
                    sock.sendall(request)
                    if not sock.recv(65536):
                        break
                    stats["sent"] += 1
        except OSError:
            stats["closed"] += 1


def churn(deadline, stats):
    while time.monotonic() < deadline:
        try:
            connect().close()
            stats["sent"] += 1
        except OSError:
            stats["closed"] += 1
            time.sleep(0.001)


def hold(deadline, stats, trickle):
    """As many connections as the server takes; with `trickle`, each an unfinished request
    that gets one more byte now and then (slowloris)."""
    socks = []
    while time.monotonic() < deadline:
        while len(socks) < 800 and time.monotonic() < deadline:
            try:
                sock = connect()
                if trickle:
                    sock.sendall(b"GET " + API + b"invocation/next HTTP/1.1\r\nX-Slow: ")
                socks.append(sock)
            except OSError:
                stats["closed"] += 1
                break
        stats["sent"] = max(stats["sent"], len(socks))
        time.sleep(0.2)
        for sock in list(socks):
            try:
                if trickle:
                    sock.send(b"a")
                else:
                    sock.setblocking(False)
                    if sock.recv(1) == b"":
                        raise OSError("closed")
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(sock)
                sock.close()
                stats["closed"] += 1
    for sock in socks:
        sock.close()


FLOODS = {
    "request_line": (b"GET /", b"a" * 65536),
    "header_value": (b"GET " + API + b"invocation/next HTTP/1.1\r\nX-Big: ", b"a" * 65536),
    "many_headers": (b"GET " + API + b"invocation/next HTTP/1.1\r\n", b"X-Many: a\r\n" * 6000),
    "body": (b"POST " + API + b"invocation/not-a-request/response HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n",
             b"\0" * 65536),
    "chunked_body": (b"POST " + API + b"init/error HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                     b"10000\r\n" + b"\0" * 65536 + b"\r\n"),
    "pipeline": (b"", b"GET " + API + b"nope HTTP/1.1\r\n\r\n" * 2000),
}


def handler(event, context):
    attack, threads = event["attack"], event.get("threads", 4)
    deadline = time.monotonic() + event["seconds"]
    stats = [{"sent": 0, "closed": 0} for _ in range(threads)]
    if attack in FLOODS:
        head, filler = FLOODS[attack]
        targets = [(endless, (head, filler, deadline, s)) for s in stats]
    elif attack == "round_trips":
        targets = [(round_trips, (deadline, s)) for s in stats]
    elif attack == "churn":
        targets = [(churn, (deadline, s)) for s in stats]
    elif attack in ("connections", "slowloris"):
        targets = [(hold, (deadline, stats[0], attack == "slowloris"))]
    else:
        raise ValueError(attack)
    workers = [threading.Thread(target=fn, args=args) for fn, args in targets]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"sent": sum(s["sent"] for s in stats), "closed": sum(s["closed"] for s in stats)}
'''

ATTACKS = ["round_trips", "request_line", "header_value", "many_headers", "body", "chunked_body", "pipeline",
           "churn", "connections", "slowloris"]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """The peak of a process's RSS while the block runs (sampled every 20 ms), and the share
    of one core the process used meanwhile."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.cpu_share = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = (0.0, 0.0)

    def _run(self) -> None:
        while self.pid is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak_kb = max(self.peak_kb, _rss_kb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        if self.pid is not None:
            self._started = (time.perf_counter(), _cpu_seconds(self.pid))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.pid is not None:
            wall, cpu = self._started
            self.cpu_share = (_cpu_seconds(self.pid) - cpu) / (time.perf_counter() - wall)


def _victim_worker(endpoint: str, name: str, seconds: float, out: Any) -> None:
    """One keep-alive client invoking as fast as it can: latencies and failed or late answers."""
    path, headers, body = _signed(endpoint, name)
    parts = urlsplit(endpoint)
    samples: list[float] = []
    failures = 0
    conn: http.client.HTTPConnection | None = None
    deadline = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
                failures += 1
            samples.append((time.perf_counter() - t0) * 1000)
        except (OSError, http.client.HTTPException):
            failures += 1
            conn = None
    out.put((samples, failures))


def victim(endpoint: str, name: str, seconds: float) -> dict[str, float]:
    queue = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_victim_worker, args=(endpoint, name, seconds, queue))
    proc.start()
    samples, failures = queue.get()
    proc.join()
    if not samples:
        return {"invokes": 0, "failures": failures}
    return {"invokes": len(samples), "failures": failures, "p50_ms": statistics.median(samples),
            "p99_ms": _percentile(samples, 0.99), "max_ms": max(samples)}


def _attack(client: Any, name: str, attack: str, seconds: float, threads: int, out: dict[str, Any]) -> None:
    try:
        resp = client.invoke(FunctionName=name, Payload=json.dumps(
            {"attack": attack, "seconds": seconds, "threads": threads}).encode())
        payload = json.loads(resp["Payload"].read() or b"null")
        out["attacker"] = payload if "FunctionError" not in resp else {"error": payload}
    except Exception as exc:  # reported in the output, not fatal to the other phases
        out["attacker"] = {"error": repr(exc)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--server-pid", type=int, help="with --endpoint: the server's pid, for its RSS")
    parser.add_argument("--seconds", type=float, default=4.0, help="victim measurement per phase")
    parser.add_argument("--threads", type=int, default=4, help="attacker threads")
    parser.add_argument("--attack", action="append", choices=ATTACKS, help="default: all")
    args = parser.parse_args()
    with lamina_server(args.endpoint) as (endpoint, pid):
        pid = pid or args.server_pid
        client = _client(endpoint)
        attacker_client = boto3.client(
            "lambda", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
            aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}, read_timeout=300))
        victim_fn = f"flood-victim-{uuid.uuid4().hex[:8]}"
        attacker_fn = f"flood-attacker-{uuid.uuid4().hex[:8]}"
        _create(client, victim_fn)
        client.create_function(FunctionName=attacker_fn, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": _zip(ATTACKER)}, MemorySize=1024, Timeout=300)
        client.get_waiter("function_active_v2").wait(FunctionName=attacker_fn,
                                                     WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        for _ in range(50):
            client.invoke(FunctionName=victim_fn, Payload=b"{}")
        results: dict[str, Any] = {}
        with RssSampler(pid) as rss:
            results["alone"] = victim(endpoint, victim_fn, args.seconds)
        results["alone"]["server_rss_peak_mb"] = round(rss.peak_kb / 1024, 1)
        results["alone"]["server_cpu_share"] = rss.cpu_share
        for attack in args.attack or ATTACKS:
            phase: dict[str, Any] = {}
            thread = threading.Thread(target=_attack, args=(
                attacker_client, attacker_fn, attack, args.seconds + 2.0, args.threads, phase))
            with RssSampler(pid) as rss:
                thread.start()
                time.sleep(1.0)  # let the attack get going
                phase.update(victim(endpoint, victim_fn, args.seconds))
                thread.join()
            phase["server_rss_peak_mb"] = round(rss.peak_kb / 1024, 1)
            phase["server_cpu_share"] = rss.cpu_share
            results[attack] = phase
            print(attack, json.dumps(phase), flush=True)
        print(json.dumps(results, indent=2, default=lambda v: round(v, 3)))


if __name__ == "__main__":
    main()
