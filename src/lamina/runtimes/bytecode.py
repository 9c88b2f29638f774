"""Bytecode for a function's Python code and layers, compiled once when the code arrives.

/var/task and /opt are read-only in an environment, so Python cannot cache what it compiles
there: without this, every cold start of a function that bundles its dependencies compiles
them again (boto3 alone: ~0.5 s). AWS does the same; this is Lamina's own speed-up.

When a Python function settles, its code tree and merged layers tree are compiled by the
image's own interpreter, inside a sandbox (bubblewrap: the image read-only as /, the tree
read-only where the environment sees it, no network, as the unprivileged sandbox uid, bounded
in time), into a tree of their own:

    <root>/<cache tag>/task/<tree name>/...   bound at /var/pyc/var/task
    <root>/<cache tag>/opt/<tree name>/...    bound at /var/pyc/opt

with `pkg/mod.py` compiled to `pkg/mod.<cache tag>.pyc`. Lamina's runtime client looks there
for sources under /var/task and /opt (and nowhere else: the image's own packages carry their
bytecode beside them). The bytecode is hash-checked (PEP 552 "checked"): the interpreter
compares it with the source's hash at each import and compiles the source instead when they
differ, so a stale or forged file is never used. Trees are content-addressed (their names are
hashes of their packages), so a compiled tree never goes stale; it is published by one
rename and never changed afterwards. Compiling is an optimisation: when it fails, the
function runs as well, only slower to start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lamina.packages import own_tree, remove_tree
from lamina.runtimes.images import Image

log = logging.getLogger("lamina.runtimes")

MOUNTS = {"/var/task": "task", "/opt": "opt"}
PYC_ROOT = "/var/pyc"
TIMEOUT_SECONDS = 300
MAX_FILES = 20_000
MAX_SOURCE_BYTES = 4 * 1024 * 1024

# Run by the image's interpreter inside the sandbox: compile every regular .py file under
# argv[1] (not following links) into argv[2], mirroring the tree. Sizes and counts bounded.
_COMPILER = f"""
import os, py_compile, sys
source, target = sys.argv[1], sys.argv[2]
count = 0
for folder, dirs, files in os.walk(source):
    dirs[:] = [d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(folder, d))]
    for name in files:
        path = os.path.join(folder, name)
        if not name.endswith(".py") or not os.path.isfile(path) or os.path.islink(path) \
                or os.path.getsize(path) > {MAX_SOURCE_BYTES}:
            continue
        count += 1
        if count > {MAX_FILES}:
            sys.exit(0)
        out = os.path.join(target, os.path.relpath(path, source)[:-3] + "." + sys.implementation.cache_tag + ".pyc")
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            py_compile.compile(path, cfile=out, dfile=path, quiet=2,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        except (OSError, ValueError, RecursionError, MemoryError):
            pass  # unreadable, or too deep to compile: the environment compiles it itself, or fails as on AWS
"""


def cache_tag(image: Image) -> str:
    """cpython-313 for Python 3.13.5."""
    major, minor = image.version.split(".")[:2]
    return f"cpython-{major}{minor}"


class BytecodeCache:
    def __init__(self, root: Path, *, uid: int, gid: int) -> None:
        self.root = Path(root)
        self._uid = uid
        self._gid = gid

    def compiled(self, image: Image, tree: Path, mount: str) -> Path | None:
        """The compiled tree of `tree` (seen at `mount`) for `image`'s interpreter, if it is
        there and the image can bind it."""
        if not (image.root / (PYC_ROOT + mount).lstrip("/")).is_dir():
            return None  # an image built before bytecode had its mount point
        path = self.root / cache_tag(image) / MOUNTS[mount] / tree.name
        return path if path.is_dir() else None

    def compile(self, image: Image, tree: Path, mount: str) -> Path | None:
        """Blocking: compile `tree` once; None when it cannot be (logged; the function still runs)."""
        if not (image.root / (PYC_ROOT + mount).lstrip("/")).is_dir():
            return None
        done = self.compiled(image, tree, mount)
        if done is not None:
            return done
        dest = self.root / cache_tag(image) / MOUNTS[mount] / tree.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        for ancestor in (self.root, self.root / cache_tag(image), dest.parent):
            os.chmod(ancestor, 0o711)
        staging = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", suffix=".tmp", dir=dest.parent))
        try:
            os.chown(staging, self._uid, self._gid)
            out = PYC_ROOT + mount
            # the image, the tree and the output may sit where the sandbox uid cannot reach them
            # (under root's home, a private temporary directory): in a private mount namespace,
            # bind them under a fresh tmpfs at /run, then drop to that uid
            bwrap = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                     "--ro-bind", "/run/image", "/", "--ro-bind", "/run/tree", mount, "--bind", "/run/out", out,
                     "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv", "--chdir", "/",
                     image.interpreter, "-I", "-S", "-c", _COMPILER, mount, out]
            stage = ('mount -t tmpfs -o mode=0755,size=64k lamina /run && mkdir /run/image /run/tree /run/out'
                     ' && mount --bind "$0" /run/image && mount --bind "$1" /run/tree && mount --bind "$2" /run/out'
                     ' && shift 2 && exec "$@"')
            argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", stage,
                    str(image.root), str(tree), str(staging),
                    "setpriv", f"--reuid={self._uid}", f"--regid={self._gid}", "--clear-groups", "--", *bwrap]
            result = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_SECONDS, start_new_session=True,
                                    check=False)
            if result.returncode != 0:
                log.warning("could not compile %s for %s: %s", tree.name, image.runtime,
                            result.stderr.decode(errors="replace")[-500:])
                return None
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                own_tree(fd, 0, 0)
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
            with contextlib.suppress(OSError):  # another caller compiled the same tree first
                os.rename(staging, dest)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not compile %s for %s: %s", tree.name, image.runtime, exc)
            return None
        finally:
            if os.path.lexists(staging):
                remove_tree(staging)
        return dest if dest.is_dir() else None
