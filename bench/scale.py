"""Scaling benchmark: warm throughput by client count, scale-up to N environments, cold starts under load.

    .venv/bin/python bench/scale.py                  # starts its own server on a temp data dir
    .venv/bin/python bench/scale.py --endpoint http://127.0.0.1:3001 --environments 200

The server it starts gets LAMINA_CAPACITY_MB, LAMINA_DISK_CAPACITY_MB and
LAMINA_CONCURRENCY_LIMIT large enough for --environments 128 MB environments, so that the
defaults (75% of host memory; half the data dir's free disk for /tmp; one 128 MB environment
per limit unit) do not throttle the scale-up. With --endpoint, the server must be
configured the same way. Memory of idle environments is read from their v1 memory cgroups
(`lamina/<server pid>/<environment>`), so it is only measured for a server on this machine.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import http.client
import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from invoke import ROLE, _client, _create, _percentile, _zip, lamina_server, raw

from lamina.cli.status import fetch_status

SLEEPER = (
    "import time\n\n\n"
    "def handler(event, context):\n"
    "    started = time.time()\n"
    "    time.sleep(event.get('sleep', 3))\n"
    "    return {'started': started}\n"
)
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory/lamina")


def _server_env(environments: int) -> dict[str, str]:
    """Limits that let `environments` environments of 128 MB (and a /tmp of 512 MB, sparse:
    nothing is written to it here) run at once."""
    return {"LAMINA_CAPACITY_MB": str((environments + 64) * 128 + 4096),
            "LAMINA_DISK_CAPACITY_MB": str((environments + 64) * 512),
            "LAMINA_CONCURRENCY_LIMIT": str(environments + 100), "LAMINA_IDLE_TIMEOUT": "600"}


def _create_sleeper(client: Any, name: str) -> None:
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": _zip(SLEEPER)}, MemorySize=128, Timeout=60)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _status(endpoint: str) -> dict[str, Any]:
    return fetch_status(endpoint, keys=("test", "test"))  # signed, as the server requires


def warm(endpoint: str, client: Any, seconds: float) -> dict[str, float]:
    name = f"scale-warm-{uuid.uuid4().hex[:8]}"
    _create(client, name)
    for _ in range(20):
        if "FunctionError" in client.invoke(FunctionName=name, Payload=b"{}"):
            raise SystemExit("the benchmark function failed")
    out: dict[str, float] = {}
    for clients in (1, 8, 32):
        rate, samples = raw(endpoint, name, clients, seconds)
        out[f"warm_{clients}_clients_per_s"] = rate
        out[f"warm_{clients}_clients_p50_ms"] = statistics.median(samples)
        out[f"warm_{clients}_clients_p99_ms"] = _percentile(samples, 0.99)
    return out


def _one_sleeping_invoke(endpoint: str, path: str, headers: dict[str, str], body: bytes,
                         barrier: threading.Barrier) -> tuple[int, float, float]:
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    conn.connect()
    barrier.wait()
    sent = time.time()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
        return resp.status, sent, float("nan")
    return resp.status, sent, float(json.loads(payload)["started"])


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _env_memory(server_pid: int) -> dict[str, Any]:
    """Per environment, averaged over the server's environment cgroups: charged memory and its
    rss / cache split, the processes' summed RSS (counts shared pages in full) and PSS by command."""
    base = MEMORY_CGROUPS / str(server_pid)
    groups = [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    usage, rss, cache, shmem, procs, proc_rss_kb = 0, 0, 0, 0, 0, 0
    pss_by_command: dict[str, int] = {}
    for group in groups:
        usage += int((group / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
        rss += int(stat.get("rss", 0))
        cache += int(stat.get("cache", 0))
        shmem += int(stat.get("shmem", 0))
        for pid in (group / "cgroup.procs").read_text().split():
            procs += 1
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        proc_rss_kb += int(line.split()[1])
                command = Path(f"/proc/{pid}/comm").read_text().strip()
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss_by_command[command] = pss_by_command.get(command, 0) + int(line.split()[1])
            except OSError:
                pass
    n = max(1, len(groups))
    mib = 1024 * 1024
    return {"environment_cgroups": len(groups), "processes_per_environment": procs / n,
            "idle_env_charged_mb": usage / n / mib, "idle_env_rss_mb": rss / n / mib,
            "idle_env_cache_mb": cache / n / mib, "idle_env_shmem_mb": shmem / n / mib,
            "idle_env_process_rss_sum_mb": proc_rss_kb / n / 1024,
            "idle_env_pss_by_command_mb": {c: round(kb / n / 1024, 3) for c, kb in sorted(pss_by_command.items())}}


def scale_up(endpoint: str, client: Any, count: int, sleep: float, server_pid: int | None) -> dict[str, Any]:
    name = f"scale-up-{uuid.uuid4().hex[:8]}"
    _create_sleeper(client, name)
    url = f"{endpoint}/2015-03-31/functions/{name}/invocations"
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"sleep": sleep}).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1").add_auth(request)
    path, headers = urlsplit(url).path, dict(request.headers.items())

    peak = {"busy": 0, "concurrent_executions": 0}
    done = threading.Event()

    def poll() -> None:
        key = f"us-east-1/{name}"
        while not done.is_set():
            try:
                fn = _status(endpoint).get("functions", {}).get(key, {})
            except OSError:
                fn = {}
            peak["busy"] = max(peak["busy"], int(fn.get("environments", {}).get("busy", 0)))
            peak["concurrent_executions"] = max(peak["concurrent_executions"],
                                                int(fn.get("concurrent_executions", 0) or 0))
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    barrier = threading.Barrier(count)
    cpu_before = _cpu_jiffies()
    with cf.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(_one_sleeping_invoke, endpoint, path, headers, body, barrier) for _ in range(count)]
        cpu_samples: list[tuple[float, tuple[int, int]]] = []
        while not all(f.done() for f in futures):
            cpu_samples.append((time.time(), _cpu_jiffies()))
            time.sleep(0.05)
        results = [f.result() for f in futures]
    done.set()
    poller.join()
    ok = [r for r in results if r[0] == 200 and r[2] == r[2]]
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    first_sent = min(r[1] for r in results)
    starts = sorted(r[2] for r in ok)
    out: dict[str, Any] = {"scale_up_requests": count, "scale_up_statuses": statuses, "scale_up_ok": len(ok)}
    if starts:
        all_busy = starts[-1] - first_sent
        out.update({
            "scale_up_all_busy_s": all_busy,
            "scale_up_first_start_s": starts[0] - first_sent,
            "scale_up_median_start_s": statistics.median(starts) - first_sent,
            "scale_up_envs_per_s": len(ok) / all_busy if all_busy > 0 else float("nan"),
            "scale_up_overlapping": all_busy < sleep,
        })
        quarter = len(starts) // 4
        if quarter > 1:
            # start rate of the first and the last quarter: does it fall as environments accumulate?
            out["scale_up_first_quarter_envs_per_s"] = (quarter - 1) / max(1e-9, starts[quarter - 1] - starts[0])
            out["scale_up_last_quarter_envs_per_s"] = (quarter - 1) / max(1e-9, starts[-1] - starts[-quarter])
        # machine CPU use (all processes, in cores) while environments were starting
        during = [j for t, j in cpu_samples if t <= starts[-1]] or [cpu_before]
        busy, total = during[-1][0] - cpu_before[0], during[-1][1] - cpu_before[1]
        out["scale_up_cpu_busy_fraction"] = busy / total if total else float("nan")
    out["scale_up_peak_busy_seen_in_status"] = peak["busy"]
    out["scale_up_peak_concurrent_executions_in_status"] = peak["concurrent_executions"]
    time.sleep(0.5)
    after = _status(endpoint)
    out["status_after"] = {k: v for k, v in after.items() if k != "functions"}
    out["status_after_function"] = after.get("functions", {}).get(f"us-east-1/{name}")
    out["scale_up_forked_starts"] = (out["status_after_function"] or {}).get("forked_starts")
    if server_pid is not None:
        out.update(_env_memory(server_pid))
    return out


def cold_under_load(client: Any, functions: int, parallel: int) -> dict[str, float]:
    names = [f"scale-cold-{uuid.uuid4().hex[:8]}" for _ in range(functions)]
    with cf.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda n: _create(client, n), names))

    def invoke(name: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        total = (time.perf_counter() - t0) * 1000
        if "FunctionError" in resp:
            raise SystemExit(f"the benchmark function failed: {resp['Payload'].read()!r}")
        tail = base64.b64decode(resp["LogResult"]).decode()
        init = [p for p in tail.replace("\n", "\t").split("\t") if p.strip().startswith("Init Duration:")]
        return total, float(init[0].split()[2]) if init else float("nan")

    with cf.ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(invoke, names))
    totals = [t for t, _ in results]
    inits = [i for _, i in results if i == i]
    out = {f"cold_{parallel}_parallel_total_p50_ms": statistics.median(totals),
           f"cold_{parallel}_parallel_total_p99_ms": _percentile(totals, 0.99)}
    if inits:
        out[f"cold_{parallel}_parallel_init_p50_ms"] = statistics.median(inits)
        out[f"cold_{parallel}_parallel_init_p99_ms"] = _percentile(inits, 0.99)
    return out


def _init_ms(resp: dict[str, Any]) -> float:
    tail = base64.b64decode(resp["LogResult"]).decode()
    init = [p for p in tail.replace("\n", "\t").split("\t") if p.strip().startswith("Init Duration:")]
    return float(init[0].split()[2]) if init else float("nan")


def fork_starts(endpoint: str, client: Any, count: int) -> dict[str, float]:
    """New environments of one function started one at a time on a quiet machine while the
    earlier ones are still busy, so each is a scale-out start (forked from the zygote)."""
    name = f"scale-fork-{uuid.uuid4().hex[:8]}"
    _create_sleeper(client, name)
    hold = json.dumps({"sleep": 0.2 * count + 2}).encode()

    def invoke(_: int) -> dict[str, Any]:
        resp: dict[str, Any] = client.invoke(FunctionName=name, Payload=hold, LogType="Tail")
        return resp

    with cf.ThreadPoolExecutor(count + 1) as pool:
        first = pool.submit(invoke, 0)
        time.sleep(1.0)  # the first environment starts afresh (and the zygote with it)
        later = []
        for i in range(count):
            later.append(pool.submit(invoke, i + 1))
            time.sleep(0.2)
        first_init = _init_ms(first.result())
        inits = [_init_ms(f.result()) for f in later]
    fn = _status(endpoint).get("functions", {}).get(f"us-east-1/{name}", {})
    return {"fresh_start_init_ms": first_init,
            "fork_start_init_p50_ms": statistics.median(inits), "fork_start_init_p99_ms": _percentile(inits, 0.99),
            "fork_starts_forked": fn.get("forked_starts", 0), "fork_starts_cold": fn.get("cold_starts", 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--server-pid", type=int, help="with --endpoint: the server's pid, to read its cgroups")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each warm run")
    parser.add_argument("--environments", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=10.0, help="handler sleep during the scale-up")
    parser.add_argument("--cold", type=int, default=50)
    parser.add_argument("--cold-parallel", type=int, default=8)
    parser.add_argument("--forks", type=int, default=20, help="scale-out starts measured one at a time")
    parser.add_argument("--skip", action="append", default=[], choices=["warm", "scale", "cold", "fork"])
    args = parser.parse_args()
    with lamina_server(args.endpoint, _server_env(args.environments)) as (endpoint, own_pid):
        server_pid = own_pid or args.server_pid
        client = _client(endpoint)
        results: dict[str, Any] = {"status_fields": sorted(_status(endpoint))}
        if "warm" not in args.skip:
            results.update(warm(endpoint, client, args.seconds))
        if "scale" not in args.skip:
            results.update(scale_up(endpoint, client, args.environments, args.sleep, server_pid))
        if "cold" not in args.skip:
            results.update(cold_under_load(client, args.cold, args.cold_parallel))
        if "fork" not in args.skip:
            results.update(fork_starts(endpoint, client, args.forks))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
