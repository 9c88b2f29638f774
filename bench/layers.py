"""Layer benchmark: cold start of a function with 5 layers (≥ 50 MB in all) versus none.

    .venv/bin/python bench/layers.py [--endpoint URL] [--runs 10]

The first function to use a combination of layers pays for merging them under /opt once,
before it becomes Active; every environment (of any function with the same layers) binds
the cached tree.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import time
import uuid
import zipfile
from typing import Any

from invoke import HELLO, ROLE, _client, _zip, lamina_server


def _layer_zip(index: int, megabytes: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo(f"python/blob{index}.bin")
        info.external_attr = 0o100644 << 16
        zf.writestr(info, os.urandom(megabytes * 1024 * 1024))  # incompressible: really that large
        info = zipfile.ZipInfo(f"python/layer{index}.py")
        info.external_attr = 0o100644 << 16
        zf.writestr(info, f"N = {index}\n")
    return buf.getvalue()


def _cold(client: Any, layers: list[str]) -> tuple[float, float, float]:
    """(first invoke end to end, its Init Duration, CreateFunction until Active), in ms."""
    name = f"bench-layers-{uuid.uuid4().hex[:8]}"
    created = time.perf_counter()
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": _zip(HELLO)}, Layers=layers)
    while client.get_function_configuration(FunctionName=name)["State"] == "Pending":
        time.sleep(0.005)
    active = (time.perf_counter() - created) * 1000
    started = time.perf_counter()
    response = client.invoke(FunctionName=name, LogType="Tail")
    total = (time.perf_counter() - started) * 1000
    if "FunctionError" in response:
        raise SystemExit(f"the function failed: {response['Payload'].read()!r}")
    report = base64.b64decode(response["LogResult"]).decode().splitlines()[-1]
    init = float(next(p for p in report.split("\t") if p.startswith("Init Duration:")).split()[2])
    client.delete_function(FunctionName=name)
    return total, init, active


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--megabytes-per-layer", type=int, default=11)
    args = parser.parse_args()
    with lamina_server(args.endpoint) as (endpoint, _pid):
        client = _client(endpoint)
        arns = [client.publish_layer_version(LayerName=f"bench-{i}-{uuid.uuid4().hex[:6]}",
                                             Content={"ZipFile": _layer_zip(i, args.megabytes_per_layer)},
                                             )["LayerVersionArn"] for i in range(5)]
        first_total, first_init, first_active = _cold(client, arns)  # merges the layers (once)
        with_layers = [_cold(client, arns) for _ in range(args.runs)]
        without = [_cold(client, []) for _ in range(args.runs)]
        results = {
            "layers_total_mb": 5 * args.megabytes_per_layer,
            "first_use_create_to_active_ms": first_active,
            "first_use_cold_ms": first_total,
            "first_use_init_ms": first_init,
            "create_to_active_with_5_layers_p50_ms": statistics.median(a for _, _, a in with_layers),
            "cold_with_5_layers_p50_ms": statistics.median(t for t, _, _ in with_layers),
            "init_with_5_layers_p50_ms": statistics.median(i for _, i, _ in with_layers),
            "create_to_active_without_layers_p50_ms": statistics.median(a for _, _, a in without),
            "cold_without_layers_p50_ms": statistics.median(t for t, _, _ in without),
            "init_without_layers_p50_ms": statistics.median(i for _, i, _ in without),
        }
        print(json.dumps({k: round(v, 2) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
