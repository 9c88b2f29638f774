"""`lamina status`: a running server's environments and counters, read from GET /_lamina/status.

`render_status` is pure (status JSON in, table text out) and tolerates missing fields, shown
as "-", so that the command works against a server that reports only part of the status.
The request is SigV4-signed (the server refuses unsigned ones unless configured otherwise)
with the key pair `signing_keys` picks from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DEFAULT_ENDPOINT = "http://127.0.0.1:3001"
DEFAULT_KEYS = ("test", "test")
STATES = ("starting", "idle", "busy", "provisioned")
# (column title, key in a function's entry)
COUNTERS = (("CONC", "concurrent_executions"), ("INVOKES", "invocations"), ("ERRORS", "errors"),
            ("THROTTLES", "throttles"), ("COLD", "cold_starts"), ("FORKED", "forked_starts"),
            ("MEM_MB", "memory_mb"), ("DISK_MB", "disk_mb"))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


# the asynchronous queue's columns: (title, key in a function's "async" entry)
ASYNC_COUNTERS = (("QUEUED", "queued"), ("IN_FLIGHT", "in_flight"), ("OLDEST_S", "oldest_event_age_s"),
                  ("ACCEPTED", "accepted"), ("SUCCEEDED", "succeeded"), ("RETRIED", "retried"),
                  ("FAILED", "failed"), ("DEAD_LETTERED", "dead_lettered"), ("THROTTLED", "throttled"),
                  ("DROPPED", "dropped"))


def _table(rows: list[list[str]]) -> list[str]:
    """The first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_status(data: dict[str, Any]) -> str:
    """One row per function (sorted by "<region>/<name>"), then one totals line; then, for
    functions with asynchronous events, one row each of the queue's counters."""
    header = ["FUNCTION", *(s.upper() for s in STATES), *(title for title, _ in COUNTERS)]
    rows = [header]
    functions: dict[str, Any] = data.get("functions") or {}
    for key in sorted(functions):
        entry = functions[key] or {}
        envs = entry.get("environments") or {}
        rows.append([key, *(str(envs.get(s, 0)) for s in STATES),
                     *(_cell(entry.get(k)) for _, k in COUNTERS)])
    lines = _table(rows)
    if not functions:
        lines.append("(no environments)")
    lines.append(
        f"capacity {_cell(data.get('capacity_mb'))} MB, reserved {_cell(data.get('reserved_mb'))} MB, "
        f"disk capacity {_cell(data.get('disk_capacity_mb'))} MB, "
        f"disk reserved {_cell(data.get('disk_reserved_mb'))} MB, "
        f"concurrency limit {_cell(data.get('concurrency_limit'))}, "
        f"concurrent executions {_cell(data.get('concurrent_executions'))}"
    )
    queued = {key: entry["async"] for key, entry in functions.items() if (entry or {}).get("async")}
    if queued:
        async_rows = [["ASYNC", *(title for title, _ in ASYNC_COUNTERS)]]
        async_rows += [[key, *(_cell(queued[key].get(k)) for _, k in ASYNC_COUNTERS)] for key in sorted(queued)]
        lines += ["", *_table(async_rows)]
    return "\n".join(lines) + "\n"


def signing_keys(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The key pair to sign with: LAMINA_CREDENTIALS's first pair (the server's own setting, when
    this runs beside it), else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else test/test."""
    env = os.environ if env is None else env
    for pair in env.get("LAMINA_CREDENTIALS", "").split(","):
        key, sep, secret = pair.partition(":")
        if sep and key.strip():
            return key.strip(), secret.strip()
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    return DEFAULT_KEYS


def fetch_status(endpoint: str, timeout: float = 5.0, keys: tuple[str, str] | None = None,
                 region: str = "us-east-1", path: str = "/_lamina/status") -> dict[str, Any]:
    """GET {endpoint}{path} (a /_lamina/ endpoint), signed with `keys` (default: `signing_keys()`);
    raises OSError (incl. URLError, HTTPError) when the server is unreachable or refuses, and
    ValueError when the answer is not a JSON object."""
    url = endpoint.rstrip("/") + path
    access_key, secret = keys or signing_keys()
    signed = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(access_key, secret), "lambda", region).add_auth(signed)
    request = urllib.request.Request(url, headers=dict(signed.headers.items()))
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        data = json.loads(resp.read())
    if not isinstance(data, dict):
        raise ValueError("the status answer is not a JSON object")
    return data


def status_command(args: argparse.Namespace) -> int:
    endpoint: str = args.endpoint or DEFAULT_ENDPOINT
    try:
        data = fetch_status(endpoint)
    except urllib.error.HTTPError as exc:
        error = exc.headers.get("x-amzn-ErrorType") or f"HTTP {exc.code}"
        print(f"lamina: {endpoint} answered {error} to /_lamina/status", file=sys.stderr)
        if exc.code == 403:
            print("lamina: the request was signed with LAMINA_CREDENTIALS's first key pair, else "
                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else test/test: set one the server accepts",
                  file=sys.stderr)
        return 1
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"lamina: cannot reach a Lamina server at {endpoint} ({reason})", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"lamina: {endpoint} did not answer with a status document ({exc})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_status(data))
    return 0


def add_status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="show a running server's environments and counters")
    status.add_argument("--endpoint", help=f"server URL (default {DEFAULT_ENDPOINT})")
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    status.set_defaults(run=status_command)
