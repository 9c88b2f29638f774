"""Build deployment packages that use AWS's own runtime interface clients as custom runtimes.

Role: install `awslambdaric` (Python, from PyPI) and `aws-lambda-ric` (Node.js, from the npm
registry) the way a user packaging a `provided.*` function would, and lay each out with a
`bootstrap` script and a handler, ready to be zipped.

Invariants:
- Each client is installed once per machine and cached under `~/.cache/lamina/tests/ric/`, keyed by
  client version, interpreter version and CPU architecture. A cache entry appears atomically
  (built in a scratch directory, then renamed), so an interrupted build leaves no entry.
- The Python client is installed from its manylinux wheel for the sandbox's interpreter
  (`/usr/bin/python3.N`), never built from source.
- The Node.js client compiles a native addon with node-gyp: it needs cmake, make, g++,
  autoconf, automake, libtool and python3 on the build machine, and Node's headers (taken from
  `/usr/include/node` when present, since there is no network to download them).
- Only the files the client loads at run time go into a package; the trees returned map paths
  inside the zip to `(content, unix_mode)`.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests import interpreters

PYTHON_RIC_VERSION = "4.2.2"
NODE_RIC_VERSION = "3.3.0"

# outside the checkout, so that every clone on this machine shares it
CACHE_ROOT = Path(os.environ.get("LAMINA_TEST_CACHE", Path.home() / ".cache" / "lamina" / "tests")) / "ric"
BUILD_TIMEOUT_S = 1200.0

# Files of the npm package that its entry point needs at run time (everything else is build input).
_NODE_RUNTIME_FILES = ("package.json", "LICENSE", "NOTICE", "bin/index.mjs", "dist/index.mjs",
                       "dist/rapid-client.node")


class RicBuildError(RuntimeError):
    """Installing or building a runtime interface client failed; the message carries the tool's output."""


@dataclass(frozen=True)
class PackageFile:
    content: bytes
    mode: int


PackageTree = dict[str, PackageFile]


def sandbox_python() -> Path:
    """The CPython under /usr that functions run with (the newest /usr/bin/python3.N)."""
    candidates = [p for p in Path("/usr/bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name)]
    if not candidates:
        raise RicBuildError("no /usr/bin/python3.N interpreter found")
    return max(candidates, key=lambda p: int(p.name.split(".")[1]))


def sandbox_node() -> Path:
    node = Path("/usr/bin/node")
    if not node.exists():
        raise RicBuildError("no /usr/bin/node found")
    return node


def _python_minor(python: Path) -> str:
    return python.name.removeprefix("python")  # "3.11"


def _node_major(node: Path) -> str:
    out = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().lstrip("v").split(".")[0]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-6000:]
        raise RicBuildError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")


def _cached(key: str, build: Callable[[Path], None]) -> Path:
    """Return CACHE_ROOT/key, calling build(scratch_dir) to create it when missing."""
    final = CACHE_ROOT / key
    if final.is_dir():
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=CACHE_ROOT))
    try:
        build(scratch)
        try:
            scratch.rename(final)
        except OSError:
            if not final.is_dir():  # lost a race to a concurrent builder: theirs is as good
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def build_python_ric(version: str = PYTHON_RIC_VERSION) -> Path:
    """A directory holding awslambdaric and its dependencies, installed for the sandbox's Python."""
    python = sandbox_python()
    minor = _python_minor(python)
    abi = "cp" + minor.replace(".", "")
    machine = platform.machine()
    key = f"python-awslambdaric-{version}-{abi}-{machine}"

    def build(scratch: Path) -> None:
        target = scratch / "site"
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--no-compile", "--target", str(target), "--only-binary=:all:",
              "--implementation", "cp", "--python-version", minor, "--abi", abi,
              "--platform", f"manylinux2014_{machine}", f"awslambdaric=={version}"], cwd=scratch)
        if not any(target.glob("runtime_client*.so")):
            raise RicBuildError("awslambdaric installed without its runtime_client extension")

    return _cached(key, build) / "site"


def build_node_ric(version: str = NODE_RIC_VERSION) -> Path:
    """A directory holding `node_modules/aws-lambda-ric` (runtime files only) with its addon compiled."""
    node = sandbox_node()
    key = f"node-aws-lambda-ric-{version}-node{_node_major(node)}-{platform.machine()}"

    def build(scratch: Path) -> None:
        work = scratch / "work"
        work.mkdir()
        (work / "package.json").write_text('{"name": "ric-build", "version": "1.0.0", "private": true}\n')
        env = {**os.environ, "PATH": f"{node.parent}:{os.environ.get('PATH', '')}"}
        if Path("/usr/include/node/node.h").exists():
            env["npm_config_nodedir"] = "/usr"  # node-gyp would otherwise download Node's headers
        _run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--foreground-scripts",
              f"aws-lambda-ric@{version}"], cwd=work, env=env)
        installed = work / "node_modules" / "aws-lambda-ric"
        if not (installed / "dist" / "rapid-client.node").exists():
            raise RicBuildError("aws-lambda-ric has no dist/rapid-client.node (did its install scripts run?)")
        out = scratch / "pkg" / "node_modules" / "aws-lambda-ric"
        for rel in _NODE_RUNTIME_FILES:
            src = installed / rel
            if src.exists():
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, out / rel)
        shutil.rmtree(work)  # the build tree with node-gyp and sources is ~160 MB

    return _cached(key, build) / "pkg"


def _tree_of(root: Path) -> PackageTree:
    tree: PackageTree = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tree[path.relative_to(root).as_posix()] = PackageFile(path.read_bytes(), mode)
    return tree


def python_bootstrap() -> str:
    """The custom runtime's entry: run awslambdaric as a module with the function's handler, on
    the Python of the interpreter layer (`tests.interpreters`)."""
    return f'#!/bin/sh\nexec {interpreters.PYTHON} -m awslambdaric "$_HANDLER"\n'


def node_bootstrap() -> str:
    """The custom runtime's entry: run aws-lambda-ric's bin script with the function's handler, on
    the Node.js of the interpreter layer."""
    return (f'#!/bin/sh\nexec {interpreters.NODE} '
            '"${LAMBDA_TASK_ROOT:-/var/task}/node_modules/aws-lambda-ric/bin/index.mjs" "$_HANDLER"\n')


def python_ric_tree(handler_files: dict[str, str], version: str = PYTHON_RIC_VERSION) -> PackageTree:
    """awslambdaric at the package root, a bootstrap, and the given handler sources."""
    tree = _tree_of(build_python_ric(version))
    tree["bootstrap"] = PackageFile(python_bootstrap().encode(), 0o755)
    tree.update({name: PackageFile(src.encode(), 0o644) for name, src in handler_files.items()})
    return tree


def node_ric_tree(handler_files: dict[str, str], version: str = NODE_RIC_VERSION) -> PackageTree:
    """aws-lambda-ric under node_modules/, a bootstrap, and the given handler sources."""
    tree = _tree_of(build_node_ric(version))
    tree["bootstrap"] = PackageFile(node_bootstrap().encode(), 0o755)
    tree.update({name: PackageFile(src.encode(), 0o644) for name, src in handler_files.items()})
    return tree


def zip_tree(tree: PackageTree) -> bytes:
    """A deployment package zip whose entries keep their Unix modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, entry in tree.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | entry.mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entry.content)
    return buf.getvalue()


def write_tree(tree: PackageTree, root: Path) -> None:
    """Lay a package out on disk (as Lamina would extract it), for running it outside the server."""
    for name, entry in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry.content)
        path.chmod(entry.mode)
