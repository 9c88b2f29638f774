"""What a new environment runs: the runtime command, custom bootstraps, the variables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lamina.domain.model import CodeRef, FunctionConfig, VersionKey
from lamina.invoke.launch import LAYER_BOOTSTRAP, NO_BOOTSTRAP, TASK_BOOTSTRAP, sandbox_request
from lamina.runtimes.catalog import RuntimeLaunch

CODE = CodeRef(blob_key="0" * 64, sha256_b64="", size=0, unzipped_size=0)
PYTHON = RuntimeLaunch("python3.11", ("/usr/bin/python3", "/var/runtime/bootstrap.py"), Path("/rt"),
                       "AWS_Lambda_python3.11", zygote_argv=("/usr/bin/python3", "/var/runtime/zygote.py"))
PROVIDED = RuntimeLaunch("provided.al2023", TASK_BOOTSTRAP, None, None)


def _cfg(**changes: Any) -> FunctionConfig:
    base = FunctionConfig(region="us-east-1", account_id="000000000000", name="fn", runtime="python3.11",
                          handler="app.handler", role="arn:aws:iam::000000000000:role/r", code=CODE, version="3",
                          generation=7, memory_size=256, ephemeral_storage=1024)
    return replace(base, **changes)


def test_a_catalog_runtime_runs_its_command_and_may_fork(tmp_path: Path) -> None:
    request, refusal = sandbox_request(_cfg(), PYTHON, tmp_path, None, "abc")
    assert refusal is None
    assert request.argv == PYTHON.argv and request.zygote_argv == PYTHON.zygote_argv
    assert request.template == VersionKey("000000000000", "us-east-1", "fn", "3") and request.generation == 7
    assert (request.memory_mb, request.tmp_mb, request.runtime_dir) == (256, 1024, Path("/rt"))
    assert request.env["AWS_LAMBDA_FUNCTION_VERSION"] == "3" and request.env["_HANDLER"] == "app.handler"
    assert request.env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    # the stream name is this environment's alone: a zygote never gets it
    assert "AWS_LAMBDA_LOG_STREAM_NAME" not in request.env
    assert request.instance_env["AWS_LAMBDA_LOG_STREAM_NAME"].endswith("/[3]abc")


def test_a_custom_runtime_runs_its_bootstrap_from_the_code_or_a_layer(tmp_path: Path) -> None:
    code, opt = tmp_path / "code", tmp_path / "opt"
    code.mkdir()
    opt.mkdir()
    (opt / "bootstrap").write_text("#!/bin/sh\n")
    request, refusal = sandbox_request(_cfg(runtime="provided.al2023"), PROVIDED, code, opt, "abc")
    assert refusal is None and request.argv == LAYER_BOOTSTRAP and request.zygote_argv is None
    (code / "bootstrap").symlink_to("/nowhere")  # a link counts: it resolves inside the sandbox
    request, refusal = sandbox_request(_cfg(runtime="provided.al2023"), PROVIDED, code, opt, "abc")
    assert refusal is None and request.argv == TASK_BOOTSTRAP


def test_a_custom_runtime_without_a_bootstrap_is_refused(tmp_path: Path) -> None:
    _request, refusal = sandbox_request(_cfg(runtime="provided.al2023"), PROVIDED, tmp_path, None, "abc")
    assert refusal is NO_BOOTSTRAP and refusal.error_type == "Runtime.InvalidEntrypoint"


def test_json_logging_is_passed_on(tmp_path: Path) -> None:
    request, _ = sandbox_request(_cfg(log_format="JSON", application_log_level="DEBUG"), PYTHON, tmp_path, None, "a")
    assert request.env["AWS_LAMBDA_LOG_FORMAT"] == "JSON" and request.env["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG"


def test_node_options_re_enable_what_the_runtime_disables(tmp_path: Path) -> None:
    node = RuntimeLaunch("nodejs22.x", ("/var/lang/bin/node", "--no-experimental-require-module",
                                        "--no-experimental-detect-module", "/var/runtime/bootstrap.mjs"), Path("/rt"),
                         "AWS_Lambda_nodejs22.x")
    as_is, _ = sandbox_request(_cfg(runtime="nodejs22.x"), node, tmp_path, None, "a")
    assert as_is.argv == node.argv
    options = "--max-old-space-size=100 --experimental-require-module"
    cfg = _cfg(runtime="nodejs22.x", environment={"NODE_OPTIONS": options})
    one, _ = sandbox_request(cfg, node, tmp_path, None, "b")
    assert one.argv == ("/var/lang/bin/node", "--no-experimental-detect-module", "/var/runtime/bootstrap.mjs")
    assert one.env["NODE_OPTIONS"] == options
