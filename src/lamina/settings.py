"""The one frozen configuration object, built once at start-up and passed down.

Sources, later wins: defaults, environment variables `LAMINA_*`, command-line flags.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_CREDENTIALS = {"test": "test"}
FORK_STARTS = ("scale-out", "always", "off")
STATUS_UNSIGNED = ("off", "loopback")
RUNTIME_FALLBACKS = ("nearest", "refuse")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3001
    data_dir: Path = Path(".lamina")
    account_id: str = "000000000000"
    default_region: str = "us-east-1"
    # access key id -> secret access key
    credentials: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CREDENTIALS))
    # seconds an idle environment stays warm before it is reaped
    idle_timeout: float = 300.0
    # host uid/gid the sandboxes run as (never root)
    sandbox_uid: int = 65534
    sandbox_gid: int = 65534
    # pids per environment
    pids_limit: int = 1024
    # public base URL used in Code.Location (defaults to http://host:port)
    public_url: str | None = None
    log_level: str = "info"
    # host memory for environments (MB); None: 75% of the machine's memory
    capacity_mb: int | None = None
    # host disk for environments' /tmp (MB, each reserves its EphemeralStorage); None: half the
    # space free on the data dir's file system at start-up
    disk_capacity_mb: int | None = None
    # each function's log on disk, both segments together (MB); the oldest lines go first
    log_max_mb: int = 64
    # account concurrency limit; None: derived from capacity (one 128 MB environment each, ≤ 1000)
    concurrency_limit: int | None = None
    # the unreserved pool never drops below this (AWS: 100); None: min(100, limit)
    min_unreserved: int | None = None
    # new environments per function per 10 s (AWS: 1000)
    burst_limit: int = 1000
    # base64 of the 32-byte key that encrypts environment variables at rest; None: a key
    # made on first start under the data dir
    env_key: str | None = None
    # seconds before each retry of an asynchronous event after a function error (AWS: about 1 and 2 min)
    async_retry_delays: tuple[float, ...] = (60.0, 120.0)
    # asynchronous deliveries in flight at once, all functions together
    async_consumers: int = 64
    # an SQS-compatible endpoint for SQS destinations and dead-letter queues; None: refused
    sqs_endpoint: str | None = None
    # when Python environments are forked from a zygote: "scale-out" (a function's second and
    # later concurrent environments), "always" (its first too, once the zygote is up) or "off"
    fork_starts: str = "scale-out"
    # unsigned GETs of /_lamina/ endpoints (status): "off" (every request SigV4-signed) or
    # "loopback" (unsigned reads allowed from loopback clients)
    status_unsigned: str = "off"
    # seconds a Code.Location / Content.Location download URL stays valid (AWS: 10 minutes)
    code_url_expires: int = 600
    # seconds a client has to send a request's headers, and may pause while sending its body
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    # runtimes run on images built from registry packages (on: the default), or on the host's
    # own interpreters (off: a host with no registry to build from)
    runtime_images: bool = True
    # where runtime images are built and kept; None: the user's cache (~/.cache/lamina/runtimes),
    # shared by every data dir on the machine: an image is a pure function of its recipe
    runtimes_dir: Path | None = None
    # a runtime with no image here (python3.12): served by its language's "nearest" runtime, or "refuse"d
    runtime_fallback: str = "nearest"
    # the Debian archive images are built from; None: the host's apt source, else debootstrap's default
    debian_mirror: str | None = None
    # the date AWS's runtime lifecycle rules (block create, block update) are judged on; None:
    # today (UTC). Set it to act as AWS will on a later date, or did on an earlier one
    runtime_lifecycle_date: date | None = None

    @property
    def effective_capacity_mb(self) -> int:
        return self.capacity_mb if self.capacity_mb is not None else _machine_memory_mb() * 3 // 4

    def effective_disk_capacity_mb(self) -> int:
        """Measured when called (the invoker calls it once, at start-up): free space changes."""
        if self.disk_capacity_mb is not None:
            return self.disk_capacity_mb
        try:
            fs = os.statvfs(self.data_dir)
        except OSError:
            return 0
        return fs.f_bavail * fs.f_frsize // (2 * 1024 * 1024)

    @property
    def effective_concurrency_limit(self) -> int:
        if self.concurrency_limit is not None:
            return self.concurrency_limit
        return max(1, min(1000, self.effective_capacity_mb // 128))

    @property
    def effective_min_unreserved(self) -> int:
        if self.min_unreserved is not None:
            return self.min_unreserved
        return min(100, self.effective_concurrency_limit)

    @property
    def effective_runtimes_dir(self) -> Path:
        if self.runtimes_dir is not None:
            return self.runtimes_dir.expanduser().resolve()
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return (Path(cache) / "lamina" / "runtimes").resolve()

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def validate(self) -> None:
        """Refuse configurations that would be unsafe; raises ValueError with a clear message."""
        if not _is_loopback(self.host) and self.credentials == DEFAULT_CREDENTIALS:
            raise ValueError(
                f"refusing to listen on {self.host}: the default test/test key pair is only allowed "
                "on loopback; set LAMINA_CREDENTIALS=ACCESS_KEY:SECRET[,…] to serve other addresses"
            )
        if self.sandbox_uid == 0 or self.sandbox_gid == 0:
            raise ValueError("sandboxes must not run as host root (sandbox uid/gid 0)")
        if self.log_max_mb < 1:
            raise ValueError(f"LAMINA_LOG_MAX_MB must be at least 1, not {self.log_max_mb}")
        if self.disk_capacity_mb is not None and self.disk_capacity_mb < 0:
            raise ValueError(f"LAMINA_DISK_CAPACITY_MB must not be negative, not {self.disk_capacity_mb}")
        if self.fork_starts not in FORK_STARTS:
            raise ValueError(f"LAMINA_FORK_STARTS must be one of {', '.join(FORK_STARTS)}, not {self.fork_starts!r}")
        if self.status_unsigned not in STATUS_UNSIGNED:
            raise ValueError(f"LAMINA_STATUS_UNSIGNED must be one of {', '.join(STATUS_UNSIGNED)}, "
                             f"not {self.status_unsigned!r}")
        if not 1 <= self.code_url_expires <= 604_800:
            raise ValueError(f"LAMINA_CODE_URL_EXPIRES must be 1 to 604800 seconds, not {self.code_url_expires}")
        if self.runtime_fallback not in RUNTIME_FALLBACKS:
            raise ValueError(f"LAMINA_RUNTIME_FALLBACK must be one of {', '.join(RUNTIME_FALLBACKS)}, "
                             f"not {self.runtime_fallback!r}")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("LAMINA_HEADER_TIMEOUT and LAMINA_BODY_TIMEOUT must be positive seconds")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        if "LAMINA_HOST" in env:
            values["host"] = env["LAMINA_HOST"]
        if "LAMINA_PORT" in env:
            values["port"] = int(env["LAMINA_PORT"])
        if "LAMINA_DATA_DIR" in env:
            values["data_dir"] = Path(env["LAMINA_DATA_DIR"])
        if "LAMINA_ACCOUNT_ID" in env:
            values["account_id"] = env["LAMINA_ACCOUNT_ID"]
        if "LAMINA_REGION" in env:
            values["default_region"] = env["LAMINA_REGION"]
        if "LAMINA_IDLE_TIMEOUT" in env:
            values["idle_timeout"] = float(env["LAMINA_IDLE_TIMEOUT"])
        if "LAMINA_PUBLIC_URL" in env:
            values["public_url"] = env["LAMINA_PUBLIC_URL"]
        for name, key in (("LAMINA_CAPACITY_MB", "capacity_mb"), ("LAMINA_CONCURRENCY_LIMIT", "concurrency_limit"),
                          ("LAMINA_MIN_UNRESERVED", "min_unreserved"), ("LAMINA_BURST_LIMIT", "burst_limit"),
                          ("LAMINA_DISK_CAPACITY_MB", "disk_capacity_mb"), ("LAMINA_LOG_MAX_MB", "log_max_mb")):
            if name in env:
                values[key] = int(env[name])
        if "LAMINA_ENV_KEY" in env:
            values["env_key"] = env["LAMINA_ENV_KEY"]
        if "LAMINA_ASYNC_RETRY_DELAYS" in env:
            values["async_retry_delays"] = _delays(env["LAMINA_ASYNC_RETRY_DELAYS"])
        if "LAMINA_ASYNC_CONSUMERS" in env:
            values["async_consumers"] = max(1, int(env["LAMINA_ASYNC_CONSUMERS"]))
        if "LAMINA_FORK_STARTS" in env:
            values["fork_starts"] = env["LAMINA_FORK_STARTS"].strip().lower()
        if env.get("LAMINA_SQS_ENDPOINT"):
            values["sqs_endpoint"] = env["LAMINA_SQS_ENDPOINT"]
        if "LAMINA_STATUS_UNSIGNED" in env:
            values["status_unsigned"] = env["LAMINA_STATUS_UNSIGNED"].strip().lower()
        if "LAMINA_CODE_URL_EXPIRES" in env:
            values["code_url_expires"] = int(env["LAMINA_CODE_URL_EXPIRES"])
        for name, key in (("LAMINA_HEADER_TIMEOUT", "header_timeout"), ("LAMINA_BODY_TIMEOUT", "body_timeout")):
            if name in env:
                values[key] = float(env[name])
        if "LAMINA_RUNTIME_IMAGES" in env:
            flag = env["LAMINA_RUNTIME_IMAGES"].strip().lower()
            if flag not in ("on", "off"):
                raise ValueError(f"LAMINA_RUNTIME_IMAGES must be on or off, not {flag!r}")
            values["runtime_images"] = flag == "on"
        if env.get("LAMINA_RUNTIMES_DIR"):
            values["runtimes_dir"] = Path(env["LAMINA_RUNTIMES_DIR"])
        if "LAMINA_RUNTIME_FALLBACK" in env:
            values["runtime_fallback"] = env["LAMINA_RUNTIME_FALLBACK"].strip().lower()
        if env.get("LAMINA_DEBIAN_MIRROR"):
            values["debian_mirror"] = env["LAMINA_DEBIAN_MIRROR"]
        if env.get("LAMINA_RUNTIME_LIFECYCLE_DATE"):
            text = env["LAMINA_RUNTIME_LIFECYCLE_DATE"].strip()
            try:
                values["runtime_lifecycle_date"] = date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"LAMINA_RUNTIME_LIFECYCLE_DATE must be a date (YYYY-MM-DD), not {text!r}") from None
        if "LAMINA_CREDENTIALS" in env:
            pairs = [p.split(":", 1) for p in env["LAMINA_CREDENTIALS"].split(",") if ":" in p]
            values["credentials"] = {k.strip(): v.strip() for k, v in pairs}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return replace(cls(), **values)


def _delays(text: str) -> tuple[float, ...]:
    """"60,120" -> (60.0, 120.0); every value a non-negative number of seconds."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"LAMINA_ASYNC_RETRY_DELAYS must be comma-separated seconds, not {text!r}") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"LAMINA_ASYNC_RETRY_DELAYS must be comma-separated seconds, not {text!r}")
    return delays


def _machine_memory_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 4096


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
