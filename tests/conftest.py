"""Shared fixtures: one real Lamina server per test session, real boto3 clients.

Each test makes its own uniquely named functions (see `unique_name`).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lamina.cli.status import fetch_status
from tests import interpreters

ROOT = Path(__file__).resolve().parent.parent
LAMINA = Path(sys.executable).with_name("lamina")
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LaminaServer:
    """A `lamina serve` subprocess on a free port with its own data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(LAMINA), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lamina exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_lamina/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("lamina did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def status(self) -> dict[str, Any]:
        """GET /_lamina/status, SigV4-signed with the test key pair as `lamina status` signs it."""
        return fetch_status(self.url, timeout=10, keys=("test", "test"))

    def client(self, service: str = "lambda", **config: Any) -> Any:
        return boto3.client(
            service, endpoint_url=self.url, region_name=REGION,
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=120, **config),
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def lambda_client(server: LaminaServer) -> Any:
    return server.client()


def _interpreter_layer(lambda_client: Any, name: str, content: bytes) -> str:
    return str(lambda_client.publish_layer_version(
        LayerName=name, Content={"ZipFile": content},
        CompatibleRuntimes=["provided.al2023", "provided.al2"])["LayerVersionArn"])


@pytest.fixture(scope="session")
def python_layer(lambda_client: Any) -> str:
    """The ARN of a layer carrying CPython 3.11 for custom runtimes (`interpreters.PYTHON`)."""
    return _interpreter_layer(lambda_client, "python3-11-interpreter", interpreters.python_layer_zip())


@pytest.fixture(scope="session")
def node_layer(lambda_client: Any) -> str:
    """The ARN of a layer carrying Node.js for custom runtimes (`interpreters.NODE`)."""
    return _interpreter_layer(lambda_client, "node-interpreter", interpreters.node_layer_zip())


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    def make(prefix: str = "") -> str:
        base = (prefix or request.node.name).replace("[", "-").replace("]", "")
        cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in base)[:40]
        return f"{cleaned}-{uuid.uuid4().hex[:8]}"

    return make


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """A deployment package; `modes` sets Unix permission bits per file (default 0o644, 0o755 for bootstrap)."""
    modes = modes or {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            mode = modes.get(name, 0o755 if name.endswith("bootstrap") else 0o644)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


@pytest.fixture
def create_function(lambda_client: Any, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create a function from a dict of files, wait until Active, delete it afterwards; returns its name."""
    created: list[str] = []

    def create(files: dict[str, str | bytes], runtime: str = "python3.11", handler: str = "app.handler",
               name: str | None = None, modes: dict[str, int] | None = None, wait: bool = True,
               **kwargs: Any) -> str:
        fn = name or unique_name("")
        lambda_client.create_function(
            FunctionName=fn, Runtime=runtime, Handler=handler, Role=ROLE,
            Code={"ZipFile": make_zip(files, modes)}, **kwargs,
        )
        created.append(fn)
        if wait:
            lambda_client.get_waiter("function_active_v2").wait(
                FunctionName=fn, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
        return fn

    yield create
    for fn in created:
        with contextlib.suppress(Exception):  # already deleted by the test
            lambda_client.delete_function(FunctionName=fn)
