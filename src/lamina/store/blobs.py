"""Content-addressed blobs on the local file system, plus their extracted code trees.

Layout under `root` (modes in brackets):

    root/            [0711]  searchable, not listable
      blobs/<key>    [0700 dir, 0600 files]  the zip bytes; the service user only
      code/          [0711]
        <key>/       [0755]  the zip's contents with the zip's own permission bits
      opt/           [0711]
        <hash>/      [0755]  layers merged in order (hash of their keys, in order)

Invariants: a blob file is either absent or complete (written to a temporary name,
fsynced, renamed, directory fsynced), and never changes once present. An extracted tree
appears in one rename and is never modified afterwards. Package contents are unpacked
by unprivileged threads (`lamina.store.unprivileged`) and owned by root once published.
The sandbox bind-mounts `code/<key>` read-only at /var/task and runs as an unprivileged
uid, so that uid needs search permission on every ancestor of `code/<key>` (`root` and
`code/` are 0711 for that; the data dir above `root` must allow it too) and then sees
exactly what the zip's permissions allow, as on AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from lamina.packages import extract_into, own_tree, remove_tree
from lamina.store.unprivileged import UnprivilegedFiles

_KEY = re.compile(r"[0-9a-f]{64}")


class FileBlobStore:
    """A `BlobStore` (see `lamina.store.protocols`) on a local directory."""

    def __init__(self, root: Path, *, unpack_as: tuple[int, int] = (65534, 65534)) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._code = self.root / "code"
        self._opt = self.root / "opt"
        for directory, mode in ((self.root, 0o711), (self._blobs, 0o700), (self._code, 0o711), (self._opt, 0o711)):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, mode)
        for directory in (self._code, self._opt):  # staging trees of a run that crashed
            for stale in directory.glob(".*.tmp"):
                remove_tree(stale)
        self._files = UnprivilegedFiles(*unpack_as)

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
        return self._tree(self._code / key, [key])

    def merged(self, keys: list[str]) -> Path:
        """The layers' trees merged in order (later ones win, as `extract_into` says), built
        once per combination of contents and cached, so environments bind it at /opt
        without rebuilding it."""
        for key in keys:
            self.path(key)
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        return self._tree(self._opt / name, keys)

    def _tree(self, dest: Path, keys: list[str]) -> Path:
        """Build `dest` from the packages `keys` unless it exists. The packages are opened
        here; everything inside them is unpacked by an unprivileged thread into a private
        staging directory it is given only by descriptor, then handed to root (without
        following a link) and published with one rename."""
        if dest.is_dir():
            return dest
        with contextlib.ExitStack() as stack:
            try:
                packages = [stack.enter_context(open(self.path(key), "rb")) for key in keys]
            except FileNotFoundError as exc:
                raise KeyError(Path(exc.filename or "").name) from None
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
            try:
                fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    if self._files.dropping:
                        os.fchown(fd, self._files.uid, self._files.gid)
                    self._files.run(extract_into, packages, fd)
                    if self._files.dropping:
                        own_tree(fd, 0, 0)
                    os.fchmod(fd, 0o755)
                finally:
                    os.close(fd)
                with contextlib.suppress(OSError):  # another caller built the same tree first
                    os.rename(staging, dest)
            finally:
                if os.path.lexists(staging):
                    remove_tree(staging)
        if not dest.is_dir():  # the rename failed and no other caller built it
            raise OSError(f"could not publish the tree of {dest.name}")
        return dest

    def close(self) -> None:
        self._files.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
