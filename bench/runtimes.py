"""Runtime images benchmark: cold starts per runtime image beside the host's interpreter,
fork starts per image, the common real function (boto3 imported and a client made at init,
from the runtime or bundled in the zip) beside MiniStack, the physical anchors (the same work
in a bare sandbox on the image, no Lamina), and each image's build time and size.

    .venv/bin/python bench/runtimes.py                     # all of it (MiniStack installed on first use)
    .venv/bin/python bench/runtimes.py --cold 9 --no-peer
    .venv/bin/python bench/runtimes.py --disk 1000         # the disk 1,000 busy environments take

Each Lamina server is the benchmark's own, on a temporary data dir, with the shared runtimes
cache (LAMINA_RUNTIMES_DIR, as `make setup` builds it). MiniStack (PyPI `ministack`, its local
executor: the host's Python) is installed into a virtualenv of its own under
~/.cache/lamina/bench-peers and run on a free port. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from invoke import ROLE, _client, _percentile, lamina_server

from lamina.runtimes.images import ImageStore
from lamina.settings import Settings

MINISTACK = "ministack==1.5.33"
PEERS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lamina" / "bench-peers"
HELLO_PY = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'ok': True}\n"
HELLO_JS = "exports.handler = async () => ({ ok: true });\n"
BOTO3_AT_INIT = ("import boto3\ns3 = boto3.client('s3', region_name='us-east-1')\n"
                 "def handler(event, context):\n    return {'ok': s3.meta.service_model.service_name}\n")
# what a function that bundles boto3 carries: these packages, from this venv
BUNDLED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def _bundled_boto3() -> dict[str, bytes]:
    """The boto3 function with boto3 and its dependencies in the zip, sources only (as pip
    installs them into a package directory: no bytecode)."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    files = {"app.py": BOTO3_AT_INIT.encode()}
    for top in BUNDLED:
        path = site / top
        for file in ([path] if path.is_file() else sorted(path.rglob("*"))):
            if file.is_file() and "__pycache__" not in file.parts:
                files[str(file.relative_to(site))] = file.read_bytes()
    return files


def _create(client: Any, runtime: str, files: dict[str, bytes], handler: str, memory: int = 512) -> str:
    name = f"bench-rt-{uuid.uuid4().hex[:8]}"
    client.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE,
                           Code={"ZipFile": _zip(files)}, MemorySize=memory, Timeout=30)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 1500})
    return name


def _init_ms(resp: dict[str, Any]) -> float | None:
    tail = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    for part in tail.split("\t"):
        if part.startswith("Init Duration:"):
            return float(part.split()[2])
    return None


def cold(client: Any, runtime: str, files: dict[str, bytes], handler: str, runs: int) -> dict[str, float]:
    """First invoke of `runs` new functions: end to end via boto3, and Init Duration."""
    totals, inits = [], []
    for _ in range(runs):
        name = _create(client, runtime, files, handler)
        t0 = time.perf_counter()
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        totals.append((time.perf_counter() - t0) * 1000)
        if "FunctionError" in resp:
            raise SystemExit(f"{runtime}: the benchmark function failed: {resp['Payload'].read()!r}")
        init = _init_ms(resp)
        if init is not None:
            inits.append(init)
        client.delete_function(FunctionName=name)
    return {"cold_p50_ms": round(statistics.median(totals), 1), "cold_p90_ms": round(_percentile(totals, 0.9), 1),
            "init_p50_ms": round(statistics.median(inits), 1) if inits else float("nan")}


def fork_starts(client: Any, runtime: str, starts: int = 12) -> dict[str, float]:
    """Init Duration of environments forked from the function's zygote, one at a time: every
    other environment is kept busy (sleeping, so idle on the CPU) and one more invoke needs a
    new environment, which scales the function out."""
    name = _create(client, runtime, {"app.py": HELLO_PY.encode()}, "app.handler", memory=128)
    client.invoke(FunctionName=name, Payload=b"{}")
    busy = json.dumps({"sleep": 3 + starts * 0.5}).encode()
    inits: list[float] = []
    with ThreadPoolExecutor(starts + 1) as pool:
        for _ in range(starts):
            pool.submit(client.invoke, FunctionName=name, Payload=busy)  # takes the idle environment
            time.sleep(0.3)
            init = _init_ms(client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail"))
            if init is not None:
                inits.append(init)
    client.delete_function(FunctionName=name)
    return {"fork_init_p50_ms": round(statistics.median(inits), 1) if inits else float("nan"), "starts": len(inits)}


# --- MiniStack ---------------------------------------------------------------------------------------------

def _ministack_python() -> Path:
    venv = PEERS / "ministack"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MINISTACK], check=True, timeout=600)
    return python


@contextlib.contextmanager
def ministack() -> Iterator[str]:
    python = _ministack_python()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tempfile.mkdtemp(prefix="ministack-bench-")
    proc = subprocess.Popen([str(python), "-m", "ministack"], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "GATEWAY_PORT": str(port)})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.kill()
        shutil.rmtree(work, ignore_errors=True)


# The physical anchors: the same work with no Lamina around it, in a bare bubblewrap sandbox on
# the image (a new set of namespaces, the image as /, nothing else): what a start cannot go below.
ANCHORS = {
    "sandbox alone (bwrap /bin/true)": ("python3.13", ("/bin/true",)),
    "python3.13 interpreter start (-S -c pass)": ("python3.13", ("/var/lang/bin/python3.13", "-S", "-c", "pass")),
    "python3.13 import boto3 + S3 client": (
        "python3.13", ("/var/lang/bin/python3.13", "-c",
                       "import boto3; boto3.client('s3', region_name='us-east-1')")),
    "nodejs22.x node start (-e 0)": ("nodejs22.x", ("/var/lang/bin/node", "-e", "0")),
}


def anchors(runs: int) -> dict[str, float]:
    """Median wall time of each anchor, `runs` times each, interleaved."""
    store = ImageStore(Settings.from_env().effective_runtimes_dir)
    times: dict[str, list[float]] = {name: [] for name in ANCHORS}
    for _ in range(runs):
        for name, (runtime, argv) in ANCHORS.items():
            image = store.ready(runtime)
            if image is None:
                continue
            bwrap = ["bwrap", "--clearenv", "--ro-bind", str(image.root), "/", "--proc", "/proc", "--dev", "/dev",
                     "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent"]
            t0 = time.perf_counter()
            subprocess.run([*bwrap, *argv], check=True, capture_output=True, timeout=60)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: round(statistics.median(values), 1) for name, values in times.items() if values}


def disk_shared(count: int) -> dict[str, Any]:
    """`count` environments of python3.13 busy at once (128 MB, each sleeping in its invoke):
    the runtimes directory's size before and while they run, and how much more of the disk
    holding the data dir they take in all. Its own server, sized for `count` environments."""
    from scale import _server_env

    from lamina.cli.status import fetch_status

    runtimes_dir = Settings.from_env().effective_runtimes_dir

    def size(path: Path) -> int:
        out = subprocess.run(["du", "-sxb", str(path)], capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])

    def used() -> int:
        st = os.statvfs(tempfile.gettempdir())
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    with lamina_server(None, _server_env(count)) as (endpoint, _pid):
        client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test",
                              config=Config(max_pool_connections=count + 8, read_timeout=300,
                                            retries={"max_attempts": 0}))
        sleeper = b"import time\ndef handler(event, context):\n    time.sleep(event['sleep'])\n"
        name = _create(client, "python3.13", {"app.py": sleeper}, "app.handler", memory=128)
        before, used_before = size(runtimes_dir), used()
        payload = json.dumps({"sleep": 30 + count / 20}).encode()
        busy = 0
        with ThreadPoolExecutor(count) as pool:
            for _ in range(count):
                pool.submit(client.invoke, FunctionName=name, Payload=payload)
            deadline = time.monotonic() + 20 + count / 20
            while busy < count and time.monotonic() < deadline:
                time.sleep(0.5)
                status = fetch_status(endpoint)["functions"].get(f"us-east-1/{name}", {})
                busy = int(status.get("environments", {}).get("busy", 0))
            during, used_during = size(runtimes_dir), used()
    return {"environments_busy": busy, "runtimes_dir_bytes_before": before, "runtimes_dir_bytes_during": during,
            "disk_used_more_mb": round((used_during - used_before) / 1e6, 1),
            "per_environment_mb": round((used_during - used_before) / 1e6 / max(busy, 1), 2)}


def images() -> list[dict[str, Any]]:
    store = ImageStore(Settings.from_env().effective_runtimes_dir)
    out = []
    for info in store.list():
        image = store.ready(info.name)
        if image is not None:
            out.append({"runtime": info.name, "version": image.version, "size_mib": round(image.size / 2**20),
                        "build_s": round(image.build_seconds, 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", type=int, default=9)
    parser.add_argument("--no-peer", action="store_true", help="skip MiniStack")
    parser.add_argument("--disk", type=int, metavar="N",
                        help="only measure the disk N busy environments of one runtime take, and exit")
    args = parser.parse_args()
    if args.disk:
        print(json.dumps(disk_shared(args.disk), indent=2))
        return
    hello_py = {"app.py": HELLO_PY.encode()}
    hello_js = {"index.js": HELLO_JS.encode()}
    boto3_zip = _bundled_boto3()
    results: dict[str, Any] = {}
    with lamina_server(None, {"LAMINA_RUNTIME_IMAGES": "off"}) as (endpoint, _pid):
        client = _client(endpoint)
        results["host python3.11 hello"] = cold(client, "python3.11", hello_py, "app.handler", args.cold)
        results["host nodejs20.x hello"] = cold(client, "nodejs20.x", hello_js, "index.handler", args.cold)
        results["host python3.11 fork starts"] = fork_starts(client, "python3.11")
    with lamina_server(None) as (endpoint, _pid):
        client = _client(endpoint)
        for runtime in ("python3.11", "python3.13", "python3.14"):
            results[f"image {runtime} hello"] = cold(client, runtime, hello_py, "app.handler", args.cold)
            results[f"image {runtime} fork starts"] = fork_starts(client, runtime)
        for runtime in ("nodejs20.x", "nodejs22.x", "nodejs24.x"):
            results[f"image {runtime} hello"] = cold(client, runtime, hello_js, "index.handler", args.cold)
        results["image python3.13 boto3 client at init (runtime's boto3)"] = cold(
            client, "python3.13", {"app.py": BOTO3_AT_INIT.encode()}, "app.handler", args.cold)
        results["image python3.13 boto3 client at init (bundled boto3)"] = cold(
            client, "python3.13", boto3_zip, "app.handler", args.cold)
    if not args.no_peer:
        with ministack() as endpoint:
            client = _client(endpoint)
            results["MiniStack python3.11 hello"] = cold(client, "python3.11", hello_py, "app.handler", args.cold)
            results["MiniStack python3.11 boto3 client at init (bundled boto3)"] = cold(
                client, "python3.11", boto3_zip, "app.handler", args.cold)
    results["anchors (ms)"] = anchors(max(args.cold, 9))
    results["images"] = images()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
