"""Content-addressed blobs on the local file system, plus their extracted code trees.

Layout under `root` (modes in brackets):

    root/            [0711]  searchable, not listable
      blobs/<key>    [0700 dir, 0600 files]  the zip bytes; the service user only
      code/          [0711]
        <key>/       [0755]  the zip's contents with the zip's own permission bits

Invariants: a blob file is either absent or complete (written to a temporary name,
fsynced, renamed, directory fsynced), and never changes once present. An extracted tree
appears in one rename and is never modified afterwards. The sandbox bind-mounts
`code/<key>` read-only at /var/task and runs as an unprivileged uid, so that uid needs
search permission on every ancestor of `code/<key>` (`root` and `code/` are 0711 for that;
the data dir above `root` must allow it too) and then sees exactly what the zip's
permissions allow, as on AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from lamina.control.codezip import extract_zip

_KEY = re.compile(r"[0-9a-f]{64}")


class FileBlobStore:
    """A `BlobStore` (see `lamina.store.protocols`) on a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._code = self.root / "code"
        for directory, mode in ((self.root, 0o711), (self._blobs, 0o700), (self._code, 0o711)):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, mode)

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        target = self.path(key)
        if target.exists():
            return key
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self._blobs)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)  # same content under the same name: racing writers are harmless
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self._blobs)
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self._blobs / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def extracted(self, key: str) -> Path:
        self.path(key)  # validates the key before it becomes a directory name
        dest = self._code / key
        if dest.is_dir():
            return dest
        # FileExistsError: another caller extracted the same content first
        with contextlib.suppress(FileExistsError):
            extract_zip(self.get(key), dest)
        return dest


    def merged(self, keys: list[str]) -> Path:
        """The layers' trees merged in order (later ones win), built once per combination
        of contents and cached, so environments bind it at /opt without rebuilding it."""
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        dest = self.root / "opt" / name
        if dest.is_dir():
            return dest
        dest.parent.mkdir(mode=0o711, exist_ok=True)
        staging = dest.parent / f".{name}.{uuid.uuid4().hex}"
        try:
            staging.mkdir(mode=0o755)
            for key in keys:
                shutil.copytree(self.extracted(key), staging, symlinks=True, dirs_exist_ok=True)
            os.chmod(staging, 0o755)
            with contextlib.suppress(OSError):  # another caller merged the same layers first
                os.rename(staging, dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return dest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
