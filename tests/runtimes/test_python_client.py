"""Lamina's Python runtime client (`runtimes/python/`) against a tiny Runtime API: the module
search order AWS gives a function, for the images' layout.

AWS's order is the function's code, its layers, the runtime's site-packages (boto3), the
runtime, then the standard library, so a function's own boto3 wins over the runtime's. The
client runs as Lamina starts it (`python3.X -B -S bootstrap.py`, cwd the task root), with this
test's interpreter or `LAMINA_TEST_PYTHON` (any executable that runs Python with the same
arguments, environment and working directory, e.g. an image's interpreter).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.runtimes.catalog import RUNTIME_FILES
from tests.runtimes.fake_runtime_api import FakeRuntimeApi

PYTHON = os.environ.get("LAMINA_TEST_PYTHON") or sys.executable
CLIENT = RUNTIME_FILES / "python"

PROBE = """
import sys
def handler(event, context):
    import boto3
    return {"path": sys.path, "boto3": boto3.__file__, "version": list(sys.version_info[:2])}
"""


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi() as fake:
        yield fake


def test_module_search_order_and_the_functions_own_boto3(api: FakeRuntimeApi, tmp_path: Path) -> None:
    task = tmp_path / "task"
    (task / "boto3").mkdir(parents=True)
    (task / "boto3" / "__init__.py").write_text("")
    (task / "app.py").write_text(PROBE)
    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": "app.handler",
           "LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(CLIENT), "PYTHONPATH": str(CLIENT),
           "AWS_LAMBDA_FUNCTION_NAME": "fn"}
    proc = subprocess.Popen([PYTHON, "-B", "-S", str(CLIENT / "bootstrap.py")], cwd=task, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        result = api.invoke({})
        assert result.kind == "response", result.body
        body = result.json()
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    version = "python{}.{}".format(*body["version"])
    assert body["path"][:5] == [str(task), f"/opt/python/lib/{version}/site-packages", "/opt/python",
                                f"/var/lang/lib/{version}/site-packages", str(CLIENT)]
    assert body["boto3"] == str(task / "boto3" / "__init__.py")
    rest = body["path"][5:]
    assert rest and all(entry not in body["path"][:5] for entry in rest)
    assert any(entry.endswith(f"/{version}") for entry in rest)  # the standard library comes after
