"""Managed runtimes on their images: the interpreter a function names, with the AWS SDK inside.

Each runtime runs on a read-only root file system built from registry packages (`make
setup` builds the ones used here into the shared runtimes cache). A function sees AWS's
layout (/var/lang, /var/runtime, /var/task, /opt), AWS's environment variables, and the
SDK on the path after its own code and layers. A runtime with no image here (python3.12)
is served by its language's nearest image and says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.cli.status import fetch_status
from lamina.runtimes.images import ImageStore
from lamina.runtimes.versions import runtime_version_arn
from lamina.settings import Settings
from tests import interpreters
from tests.conftest import LAMINA, ROLE, LaminaServer, make_zip
from tests.integration.conftest import assert_aws_error, invoke_json

Fn = Callable[..., str]

PY_PROBE = '''\
import os, sys

def handler(event, context):
    out = {"version": sys.version.split()[0], "executable": sys.executable, "path": sys.path,
           "env": {k: os.environ.get(k) for k in ("AWS_EXECUTION_ENV", "PATH", "LD_LIBRARY_PATH", "LANG", "TZ",
                                                  "PYTHONPATH", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR")},
           "os_release": open("/etc/os-release").read(),
           "host_paths": [p for p in ("/work", "/root/.cache", "/etc/shadow-") if os.path.exists(p)]}
    try:
        import boto3, botocore
        out["boto3"] = {"version": boto3.__version__, "file": boto3.__file__, "botocore": botocore.__version__}
    except ImportError as exc:
        out["boto3"] = repr(exc)
    else:
        if hasattr(boto3, "client"):
            out["client"] = boto3.client("s3", region_name="us-east-1").meta.service_model.service_name
    return out
'''

NODE_CJS = '''\
const { S3Client } = require("@aws-sdk/client-s3");
const { DynamoDBDocumentClient } = require("@aws-sdk/lib-dynamodb");
exports.handler = async () => ({
  version: process.version,
  execPath: process.execPath,
  env: { AWS_EXECUTION_ENV: process.env.AWS_EXECUTION_ENV, NODE_PATH: process.env.NODE_PATH,
         PATH: process.env.PATH },
  s3: typeof S3Client, ddb: typeof DynamoDBDocumentClient,
  sdkPath: require.resolve("@aws-sdk/client-s3"),
});
'''

NODE_ESM = '''\
import { S3Client } from "@aws-sdk/client-s3";
import { STSClient } from "@aws-sdk/client-sts";
export const handler = async () => ({ version: process.version, s3: typeof S3Client, sts: typeof STSClient });
'''


@pytest.fixture(scope="module")
def client(lambda_client: Any) -> Any:
    return lambda_client


def probe(client: Any, fn: str) -> dict[str, Any]:
    resp, body = invoke_json(client, fn, {})
    assert "FunctionError" not in resp, body
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(("runtime", "version", "suite"), [("python3.11", "3.11", "bookworm"),
                                                           ("python3.13", "3.13", "trixie")])
def test_python_runs_on_its_image_with_boto3(client: Any, create_function: Fn, runtime: str, version: str,
                                              suite: str) -> None:
    fn = create_function({"app.py": PY_PROBE}, runtime=runtime)
    body = probe(client, fn)
    assert body["version"].startswith(version + ".")
    assert f"VERSION_CODENAME={suite}" in body["os_release"]
    assert body["host_paths"] == []  # the image is the whole file system: nothing of the host's
    assert body["boto3"]["file"].startswith(f"/var/lang/lib/python{version}/site-packages/boto3/"), body["boto3"]
    assert body["client"] == "s3"
    env = body["env"]
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["PATH"].startswith("/var/lang/bin:")
    assert env["LANG"] == "en_US.UTF-8" and env["TZ"] == ":UTC"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    path = body["path"]
    # AWS's order: the function's code, then its layers, then the runtime's packages
    assert path[0] == "/var/task"
    assert path.index(f"/opt/python/lib/python{version}/site-packages") < \
        path.index(f"/var/lang/lib/python{version}/site-packages")


def test_functions_own_boto3_wins(client: Any, create_function: Fn) -> None:
    fn = create_function({"app.py": PY_PROBE, "boto3/__init__.py": "__version__ = '0.0.mine'\n"},
                         runtime="python3.13")
    body = probe(client, fn)
    assert body["boto3"]["version"] == "0.0.mine"
    assert body["boto3"]["file"] == "/var/task/boto3/__init__.py"
    assert "client" not in body  # the stand-in has no client(): the runtime's boto3 was not used


def test_layer_package_wins_over_the_runtime(client: Any, create_function: Fn,
                                             unique_name: Callable[[str], str]) -> None:
    layer = client.publish_layer_version(
        LayerName=unique_name("botolayer"),
        Content={"ZipFile": make_zip({"python/boto3/__init__.py": "__version__ = '0.0.layer'\n"})})
    try:
        fn = create_function({"app.py": PY_PROBE}, runtime="python3.13", Layers=[layer["LayerVersionArn"]])
        assert probe(client, fn)["boto3"]["version"] == "0.0.layer"
    finally:
        client.delete_layer_version(LayerName=layer["LayerArn"], VersionNumber=layer["Version"])


@pytest.mark.parametrize(("runtime", "major"), [("nodejs20.x", "20"), ("nodejs22.x", "22")])
def test_node_runs_on_its_image_with_the_sdk(client: Any, create_function: Fn, runtime: str, major: str) -> None:
    fn = create_function({"index.js": NODE_CJS}, runtime=runtime, handler="index.handler")
    body = probe(client, fn)
    assert body["version"].startswith(f"v{major}.")
    assert body["execPath"].startswith("/var/lang/")
    assert body["s3"] == "function" and body["ddb"] == "function"
    assert body["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert body["env"]["NODE_PATH"].split(":")[2] == "/var/runtime/node_modules"


def test_node_es_module_imports_the_sdk(client: Any, create_function: Fn) -> None:
    fn = create_function({"index.mjs": NODE_ESM}, runtime="nodejs22.x", handler="index.handler")
    body = probe(client, fn)
    assert body == {"version": body["version"], "s3": "function", "sts": "function"}
    assert body["version"].startswith("v22.")


RUBY_PROBE = '''\
require "aws-sdk-s3"

def handler(event:, context:)
  raise ArgumentError, "asked to fail" if event["fail"]
  { "version" => RUBY_VERSION, "sdk" => Aws::S3::Client.name, "function" => context.function_name,
    "env" => ENV["AWS_EXECUTION_ENV"], "remaining" => context.get_remaining_time_in_millis }
end
'''


@pytest.mark.parametrize(("runtime", "files", "handler", "version"), [
    ("python3.14", {"app.py": PY_PROBE}, "app.handler", "3.14."),
    ("nodejs18.x", {"index.js": NODE_CJS}, "index.handler", "v18."),
    ("nodejs24.x", {"index.js": NODE_CJS}, "index.handler", "v24."),
    ("nodejs24.x", {"index.mjs": NODE_ESM}, "index.handler", "v24."),
    ("ruby3.3", {"app.rb": RUBY_PROBE}, "app.handler", "3.3."),
])
def test_every_built_runtime_runs_with_its_sdk(client: Any, create_function: Fn, runtime: str,
                                               files: dict[str, str], handler: str, version: str) -> None:
    fn = create_function(files, runtime=runtime, handler=handler)
    body = probe(client, fn)
    assert body["version"].startswith(version), body
    if runtime.startswith("python"):
        assert body["client"] == "s3"
    elif runtime.startswith("nodejs"):
        assert body["s3"] == "function"
    else:
        assert body["sdk"] == "Aws::S3::Client" and body["function"] == fn
        assert body["env"] == "AWS_Lambda_ruby3.3" and 0 < body["remaining"] <= 3000


OS_PROBE = """import json, os, shutil, urllib.request
api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'
while True:
    r = urllib.request.urlopen(api + 'next')
    rid = r.headers['Lambda-Runtime-Aws-Request-Id']
    r.read()
    found = {name: shutil.which(name) for name in ('python3', 'node', 'ruby', 'sh')}
    release = dict(line.split('=', 1) for line in open('/etc/os-release').read().split('\\n') if '=' in line)
    body = {'found': found, 'release': release.get('VERSION_CODENAME'), 'path': os.environ['PATH'],
            'env': os.environ.get('AWS_EXECUTION_ENV')}
    urllib.request.urlopen(urllib.request.Request(api + rid + '/response', data=json.dumps(body).encode())).read()
"""


@pytest.mark.parametrize(("runtime", "suite"), [("provided.al2023", "trixie"), ("provided.al2", "bookworm")])
def test_os_only_images_carry_no_language(client: Any, create_function: Fn, python_layer: str,
                                          runtime: str, suite: str) -> None:
    """As on AWS, an OS-only runtime has a shell and no interpreter: the custom runtime brings
    its own (here CPython from a layer, at /opt)."""
    fn = create_function({"bootstrap": f"#!{interpreters.PYTHON}\n" + OS_PROBE}, runtime=runtime,
                         handler="unused", Layers=[python_layer])
    body = probe(client, fn)
    assert body["found"] == {"python3": None, "node": None, "ruby": None, "sh": "/usr/bin/sh"}, body
    assert body["release"] == suite
    assert body["path"] == "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert body["env"] is None


def test_ruby_error_shape(client: Any, create_function: Fn) -> None:
    fn = create_function({"app.rb": RUBY_PROBE}, runtime="ruby3.3", handler="app.handler")
    resp, body = invoke_json(client, fn, {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function<ArgumentError>" and body["errorMessage"] == "asked to fail"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]


def test_ruby34_falls_back_to_ruby33(client: Any, create_function: Fn) -> None:
    fn = create_function({"app.rb": RUBY_PROBE}, runtime="ruby3.4", handler="app.handler")
    assert probe(client, fn)["version"].startswith("3.3.")


def test_runtime_version_config_names_the_image(client: Any, create_function: Fn) -> None:
    one = create_function({"app.py": PY_PROBE}, runtime="python3.13")
    two = create_function({"app.py": PY_PROBE}, runtime="python3.13")
    other = create_function({"app.py": PY_PROBE}, runtime="python3.11")
    arn = client.get_function_configuration(FunctionName=one)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert arn.startswith("arn:aws:lambda:us-east-1::runtime:")
    assert client.get_function_configuration(FunctionName=two)["RuntimeVersionConfig"]["RuntimeVersionArn"] == arn
    assert client.get_function_configuration(FunctionName=other)["RuntimeVersionConfig"]["RuntimeVersionArn"] != arn


def test_cold_start_logs_init_start(client: Any, create_function: Fn, server: LaminaServer) -> None:
    fn = create_function({"app.py": PY_PROBE}, runtime="python3.13")
    probe(client, fn)
    arn = client.get_function_configuration(FunctionName=fn)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    out = _logs(server, fn)
    assert "INIT_START Runtime Version: python:3.13." in out
    assert f"\tRuntime Version ARN: {arn}" in out


def test_python312_falls_back_and_says_so(client: Any, create_function: Fn, server: LaminaServer) -> None:
    fn = create_function({"app.py": PY_PROBE}, runtime="python3.12")
    body = probe(client, fn)
    assert body["version"].startswith("3.13.")
    assert body["env"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"  # what the function asked for
    cfg = client.get_function_configuration(FunctionName=fn)
    assert cfg["Runtime"] == "python3.12"
    native = create_function({"app.py": PY_PROBE}, runtime="python3.13")
    assert cfg["RuntimeVersionConfig"]["RuntimeVersionArn"] != \
        client.get_function_configuration(FunctionName=native)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert "python3.12 is served by python3.13" in _logs(server, fn)
    assert f"function {fn}: python3.12 is served by python3.13" in server.log_path.read_text()


def test_runtimes_endpoint_lists_images(server: LaminaServer) -> None:
    runtimes = {entry["Runtime"]: entry for entry in fetch_status(server.url, path="/_lamina/runtimes")["Runtimes"]}
    assert runtimes["python3.13"]["Image"]["State"] == "ready"
    assert runtimes["python3.13"]["Image"]["Size"] > 10_000_000
    assert runtimes["python3.13"]["Image"]["Version"].startswith("3.13.")
    assert runtimes["python3.12"]["ServedBy"] == "python3.13" and "python3.12" in runtimes["python3.12"]["Note"]


# --- servers of their own: a refusing host, a host whose images cannot be built ---------------------------

@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[..., LaminaServer]]:
    servers: list[LaminaServer] = []

    def start(data: Path | None = None, **env: str) -> LaminaServer:
        srv = LaminaServer(data or tmp_path / f"data{len(servers)}", env={"LAMINA_RUNTIME_IMAGES": "on", **env})
        srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_fallback_refuse(own_server: Callable[..., LaminaServer]) -> None:
    client = own_server(LAMINA_RUNTIME_FALLBACK="refuse").client()
    with pytest.raises(client.exceptions.InvalidParameterValueException) as err:
        client.create_function(FunctionName="f", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": make_zip({"app.py": PY_PROBE})})
    assert_aws_error(err.value, 400, "InvalidParameterValueException")
    assert "The runtime parameter of python3.12 is not available on this Lamina host" in str(err.value)


def test_failed_build_fails_the_function_then_recovers(own_server: Callable[..., LaminaServer],
                                                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    broken = own_server(data, LAMINA_RUNTIMES_DIR=str(tmp_path / "empty-runtimes"),
                        LAMINA_DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    client = broken.client()
    client.create_function(FunctionName="f", Runtime="python3.13", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({"app.py": PY_PROBE})})
    cfg = _wait_settled(client, "f")
    assert cfg["State"] == "Failed"
    assert cfg["StateReasonCode"] == "InvalidRuntime"
    assert "python3.13" in cfg["StateReason"] and "127.0.0.1:9" in cfg["StateReason"]
    with pytest.raises(client.exceptions.ResourceNotReadyException) as err:
        client.invoke(FunctionName="f", Payload=b"{}")
    assert "failed state" in str(err.value) and "could not build the python3.13 runtime" in str(err.value)
    broken.stop()
    fixed = own_server(data)  # the shared runtimes cache, where the image is built
    client = fixed.client()
    client.delete_function(FunctionName="f")
    client.create_function(FunctionName="f", Runtime="python3.13", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({"app.py": PY_PROBE})})
    assert _wait_settled(client, "f")["State"] == "Active"
    assert probe(client, "f")["version"].startswith("3.13.")


def _wait_settled(client: Any, fn: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cfg: dict[str, Any] = client.get_function_configuration(FunctionName=fn)
        if cfg["State"] != "Pending":
            return cfg
        time.sleep(0.2)
    raise AssertionError(f"{fn} still Pending after {timeout} s")


def _logs(server: LaminaServer, fn: str) -> str:
    out = subprocess.run([str(LAMINA), "logs", fn, "--data-dir", str(server.data_dir)], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_node_unreadable_handler_says_what_to_do(client: Any, create_function: Fn) -> None:
    fn = create_function({"index.js": "exports.handler = async () => 1;\n"}, runtime="nodejs22.x",
                         handler="index.handler", modes={"index.js": 0o600})
    resp, body = invoke_json(client, fn, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == ("EACCES: permission denied, open '/var/task/index.js' — files in the deployment "
                                    "package must be readable by all users (mode 644, directories 755)")


BYTECODE_PROBE = '''\
import os, sys
import mylib.inner, layerlib

def handler(event, context):
    return {name: {"cached": sys.modules[name].__cached__, "exists": os.path.exists(sys.modules[name].__cached__)}
            for name in ("mylib.inner", "layerlib", "app")}
'''


def test_function_code_and_layers_are_compiled_once(client: Any, create_function: Fn,
                                                    unique_name: Callable[[str], str]) -> None:
    """Bytecode compiled when the code arrives, hash-checked, used from /var/pyc (where
    /var/task and /opt, read-only, cannot hold it)."""
    layer = client.publish_layer_version(LayerName=unique_name("pyclayer"),
                                         Content={"ZipFile": make_zip({"python/layerlib.py": "X = 1\n"})})
    try:
        fn = create_function({"app.py": BYTECODE_PROBE, "mylib/__init__.py": "", "mylib/inner.py": "Y = 2\n"},
                             runtime="python3.13", Layers=[layer["LayerVersionArn"]])
        body = probe(client, fn)
        assert body["mylib.inner"] == {"cached": "/var/pyc/var/task/mylib/inner.cpython-313.pyc", "exists": True}
        assert body["app"] == {"cached": "/var/pyc/var/task/app.cpython-313.pyc", "exists": True}
        assert body["layerlib"] == {"cached": "/var/pyc/opt/python/layerlib.cpython-313.pyc", "exists": True}
    finally:
        client.delete_layer_version(LayerName=layer["LayerArn"], VersionNumber=layer["Version"])


def test_hostile_code_is_compiled_safely(client: Any, create_function: Fn, server: LaminaServer) -> None:
    """The compiler meets a source too deep to compile, a link out of the tree and a file it
    may not read: it skips them, follows nothing, and the function runs as it would anyway."""
    fn = create_function(
        {"app.py": "import ok\ndef handler(event, context):\n    return ok.VALUE\n", "ok.py": "VALUE = 7\n",
         "deep.py": "x = " + "(" * 200_000 + ")" * 200_000 + "\n", "secret.py": "S = 1\n",
         "etc": b"/etc", "etcpy": b"/usr/lib/python3.13"},
        runtime="python3.13", modes={"secret.py": 0o600, "etc": 0o120777, "etcpy": 0o120777})
    _resp, body = invoke_json(client, fn, {})
    assert body == 7, body
    trees = list((server.data_dir / "bytecode" / "cpython-313" / "task").iterdir())
    compiled = {p.relative_to(tree).as_posix() for tree in trees for p in tree.rglob("*")
                if tree.name == _code_key(client, fn)}
    assert {"app.cpython-313.pyc", "ok.cpython-313.pyc"} <= compiled
    assert not any(name.startswith(("etc", "deep", "secret")) for name in compiled), compiled


def _code_key(client: Any, fn: str) -> str:
    sha = base64.b64decode(client.get_function_configuration(FunctionName=fn)["CodeSha256"]).hex()
    return str(sha)


def test_outdated_images_and_clients_are_removed_at_start(own_server: Callable[..., LaminaServer]) -> None:
    """An image no recipe names any more (its recipe changed) and a runtime client of older
    Lamina code are deleted when a server starts; the current ones stay."""
    shared = Settings.from_env().effective_runtimes_dir
    old_image = shared / "python3.13" / "0123456789abcdef"
    old_client = shared / "clients" / "python-0123456789abcdef"
    for folder in (old_image / "rootfs", old_client):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "marker").write_text("old")
    own_server()
    deadline = time.monotonic() + 20
    while (old_image.exists() or old_client.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not old_image.exists() and not old_client.exists()
    assert ImageStore(shared).ready("python3.13") is not None


def test_a_pinned_version_keeps_its_older_image(own_server: Callable[..., LaminaServer], tmp_path: Path) -> None:
    """A version pinned (Manual) to an older image of its runtime (one a recipe change has
    replaced, kept on this host) starts on that image, and a server start keeps it; once no
    version is pinned to it, a server start deletes it."""
    shared = Settings.from_env().effective_runtimes_dir
    current = ImageStore(shared).ready("python3.13")
    assert current is not None
    older_digest = hashlib.sha256(b"an older python3.13 recipe").hexdigest()
    older = shared / "python3.13" / older_digest[:16]
    data = tmp_path / "data"
    server = own_server(data)  # its start-up clean-up would delete an older image made before it
    client = server.client()
    client.create_function(FunctionName="f", Runtime="python3.13", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": make_zip({"app.py": ON_OLDER_IMAGE})})
    assert _wait_settled(client, "f")["State"] == "Active"
    older.mkdir()
    try:
        subprocess.run(["cp", "-al", str(current.root), str(older / "rootfs")], check=True, timeout=120)
        (older / "rootfs" / "etc" / "older-image").write_text("yes\n")
        manifest = json.loads((current.root.parent / "manifest.json").read_text())
        (older / "manifest.json").write_text(json.dumps({**manifest, "digest": older_digest}))
        older_arn = runtime_version_arn("us-east-1", "python3.13", older_digest)

        assert invoke_json(client, "f", {})[1] is False
        client.put_runtime_management_config(FunctionName="f", UpdateRuntimeOn="Manual", RuntimeVersionArn=older_arn)
        assert invoke_json(client, "f", {})[1] is True
        assert client.get_function_configuration(FunctionName="f")["RuntimeVersionConfig"]["RuntimeVersionArn"] \
            == older_arn

        server.stop()
        server = own_server(data)
        client = server.client()
        _wait_for_log(server, "runtime images checked")
        assert older.exists()
        assert invoke_json(client, "f", {})[1] is True
        client.put_runtime_management_config(FunctionName="f", UpdateRuntimeOn="Auto")
        assert invoke_json(client, "f", {})[1] is False

        server.stop()
        _wait_for_log(own_server(data), "runtime images checked: 1 removed")
        assert not older.exists()
    finally:
        shutil.rmtree(older, ignore_errors=True)


def _wait_for_log(server: LaminaServer, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_path.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the server's log"
        time.sleep(0.05)


ON_OLDER_IMAGE = "import os\ndef handler(event, context):\n    return os.path.exists('/etc/older-image')\n"


ESM_LIB = "export const greeting = 'hello from an ES module';\n"
REQUIRES_ESM = "exports.handler = async () => require('./lib.mjs').greeting;\n"
ESM_IN_JS = "export const handler = async () => 'detected as an ES module';\n"


@pytest.mark.parametrize("runtime", ["nodejs20.x", "nodejs22.x"])
def test_node_requires_es_modules_only_when_the_function_enables_it(client: Any, create_function: Fn,
                                                                     runtime: str) -> None:
    """AWS disables Node's require(esm) on nodejs20.x and 22.x (--no-experimental-require-module);
    NODE_OPTIONS=--experimental-require-module turns it back on."""
    files = {"index.js": REQUIRES_ESM, "lib.mjs": ESM_LIB}
    off = create_function(files, runtime=runtime, handler="index.handler")
    resp, body = invoke_json(client, off, {})
    assert resp["FunctionError"] == "Unhandled", body
    assert "ERR_REQUIRE_ESM" in json.dumps(body)
    on = create_function(files, runtime=runtime, handler="index.handler",
                         Environment={"Variables": {"NODE_OPTIONS": "--experimental-require-module"}})
    assert invoke_json(client, on, {})[1] == "hello from an ES module"


@pytest.mark.parametrize(("runtime", "detected"), [("nodejs22.x", False), ("nodejs24.x", True)])
def test_node22_does_not_detect_es_module_syntax(client: Any, create_function: Fn, runtime: str,
                                                 detected: bool) -> None:
    """nodejs22.x runs with --no-experimental-detect-module: ES module syntax in a .js file with
    no "type": "module" is a syntax error there, as on AWS, and runs on nodejs24.x."""
    fn = create_function({"index.js": ESM_IN_JS}, runtime=runtime, handler="index.handler")
    resp, body = invoke_json(client, fn, {})
    if detected:
        assert body == "detected as an ES module"
    else:
        assert resp["FunctionError"] == "Unhandled", body
        assert body["errorType"] == "Runtime.UserCodeSyntaxError", body
