"""Deployment packages (.zip): validation at upload time and safe extraction.

Invariants: nothing in a package is trusted. `inspect_zip` reads only the central
directory (plus symlink targets) and refuses what AWS refuses; `extract_zip` writes only
below its destination, never follows a symlink, counts the bytes it actually inflates
(not the sizes the archive declares) and publishes the tree with one atomic rename, so a
reader sees either nothing or the whole tree.

What AWS answers, as far as recorded behaviour shows:
- over 50 MiB zipped: 413 RequestEntityTooLargeException "Zipped size must be smaller
  than 52428800 bytes"; over 250 MiB unzipped: 400 InvalidParameterValueException
  "Unzipped size must be smaller than 262144000 bytes"; not a zip: 400
  InvalidParameterValueException "Could not unzip uploaded file. Please check your file,
  then try to upload again.".
- a valid zip without entries (the 22-byte end-of-central-directory record alone): 400
  InvalidParameterValueException "Uploaded file must be a non-empty zip" (reported
  verbatim by many CloudFormation/CDK/Terraform users whose packaging produced an empty
  archive). A zero-byte upload gets the same answer here.
- entries with absolute paths or ".." components, and entries reached through a
  symlink entry: AWS documents nothing and no recorded response was found. Lamina
  refuses the whole package at upload with the generic "Could not unzip" message rather
  than silently dropping files, so the user learns at CreateFunction time, not at invoke.
- backslashes are not path separators: AWS keeps `a\\b.py` as one literal file name
  (a known pitfall of Windows' Compress-Archive), and so does Lamina.
- Unix permission bits are kept (AWS's guide warns that files without world read
  permission make the function fail); setuid/setgid/sticky bits are dropped; entries
  without Unix attributes get 0644 (files) and 0755 (directories). Symlinks are kept.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina import errors

MAX_ZIPPED_BYTES = 52_428_800
MAX_UNZIPPED_BYTES = 262_144_000

# A symlink's target is its entry's content; real targets are short path strings.
_MAX_SYMLINK_TARGET = 4096
_CHUNK = 1 << 20
_UNIX = 3  # ZipInfo.create_system for archives made on Unix

_NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
_EMPTY_ZIP = "Uploaded file must be a non-empty zip"
_ZIPPED_TOO_LARGE = f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes"


def _unzipped_too_large(limit: int) -> str:
    return f"Unzipped size must be smaller than {limit} bytes"


@dataclass(frozen=True)
class PreparedCode:
    """What the control plane needs to know about an accepted package."""

    blob_key: str       # hex sha256 of the zip bytes (the blob store's content address)
    sha256_b64: str     # base64 of the raw sha256 digest: AWS's CodeSha256
    size: int           # zipped bytes: CodeSize
    unzipped_size: int  # sum of the sizes the entries declare


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]   # normalised path components below the root
    kind: str                # "file" | "dir" | "symlink"
    mode: int                # permission bits to apply (0..0o777)


def inspect_zip(data: bytes) -> PreparedCode:
    """Validate a package without extracting it; raise the ApiError AWS would raise."""
    if len(data) > MAX_ZIPPED_BYTES:
        raise errors.RequestEntityTooLargeException(_ZIPPED_TOO_LARGE)
    if not data:
        raise errors.InvalidParameterValueException(_EMPTY_ZIP)
    with _open_zip(data) as zf:
        entries = _entries(zf)
        if not entries:
            raise errors.InvalidParameterValueException(_EMPTY_ZIP)
        unzipped = sum(e.info.file_size for e in entries)
        if unzipped > MAX_UNZIPPED_BYTES:
            raise errors.InvalidParameterValueException(_unzipped_too_large(MAX_UNZIPPED_BYTES))
        _refuse_paths_through_symlinks(entries)
        # Inflate everything once (into nothing) so corrupt data or a bad CRC fails the
        # upload rather than the first invoke; the count is of real bytes, not declared ones.
        inflated = 0
        for entry in entries:
            if entry.kind == "symlink":
                _read_symlink_target(zf, entry)
                continue
            with zf.open(entry.info) as src:
                while chunk := src.read(_CHUNK):
                    inflated += len(chunk)
                    if inflated > MAX_UNZIPPED_BYTES:
                        raise errors.InvalidParameterValueException(
                            _unzipped_too_large(MAX_UNZIPPED_BYTES))
    digest = hashlib.sha256(data).digest()
    return PreparedCode(
        blob_key=digest.hex(),
        sha256_b64=base64.b64encode(digest).decode("ascii"),
        size=len(data),
        unzipped_size=unzipped,
    )


def extract_zip(data: bytes, dest: Path, *, max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> None:
    """Extract `data` into the new directory `dest` (which must not exist yet).

    The tree is built in a hidden sibling of `dest` and renamed into place; on any error
    the sibling is removed and `dest` is left untouched. If `dest` appears meanwhile
    (another caller extracting the same content), FileExistsError is raised and the
    other caller's tree stays. Refusals raise InvalidParameterValueException.
    """
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _open_zip(data) as zf:
        entries = _entries(zf)
        if sum(e.info.file_size for e in entries) > max_unzipped_bytes:
            raise errors.InvalidParameterValueException(_unzipped_too_large(max_unzipped_bytes))
        _refuse_paths_through_symlinks(entries)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        try:
            _Extractor(zf, tmp, max_unzipped_bytes).run(entries)
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, dest)
            except OSError as exc:
                if dest.exists():
                    raise FileExistsError(str(dest)) from exc
                raise
        except BaseException:
            _remove_tree(tmp)
            raise


# What zipfile raises for archives it cannot read: bad structure, corrupt deflate data,
# CRC mismatch, unsupported compression, encryption.
_CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError, ValueError)
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


@contextlib.contextmanager
def _open_zip(data: bytes) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (*_CORRUPT, OSError) as exc:
        raise errors.InvalidParameterValueException(_NOT_A_ZIP) from exc
    with zf:
        try:
            yield zf
        except _CORRUPT as exc:
            raise errors.InvalidParameterValueException(_NOT_A_ZIP) from exc


def _entries(zf: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    for info in zf.infolist():
        parts = _safe_parts(info.filename)
        if not parts:
            continue  # "./" and the like: the root itself
        if info.flag_bits & 0x1 or info.compress_type not in _METHODS:
            raise errors.InvalidParameterValueException(_NOT_A_ZIP)  # encrypted or unreadable
        entries.append(_Entry(info, parts, *_kind_and_mode(info)))
    return entries


def _safe_parts(name: str) -> tuple[str, ...]:
    if name.startswith("/"):
        raise errors.InvalidParameterValueException(_NOT_A_ZIP)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise errors.InvalidParameterValueException(_NOT_A_ZIP)
    return parts


def _kind_and_mode(info: zipfile.ZipInfo) -> tuple[str, int]:
    unix = info.external_attr >> 16 if info.create_system == _UNIX else 0
    is_dir = info.filename.endswith("/")
    if unix:
        if stat.S_ISLNK(unix):
            return "symlink", 0o777
        if stat.S_ISDIR(unix):
            is_dir = True
        return ("dir" if is_dir else "file"), stat.S_IMODE(unix) & 0o777
    return ("dir", 0o755) if is_dir else ("file", 0o644)


def _refuse_paths_through_symlinks(entries: list[_Entry]) -> None:
    links = {e.parts for e in entries if e.kind == "symlink"}
    if not links:
        return
    for entry in entries:
        if entry.kind == "dir" and entry.parts in links:
            raise errors.InvalidParameterValueException(_NOT_A_ZIP)  # both a link and a directory
        for depth in range(1, len(entry.parts)):
            if entry.parts[:depth] in links:
                raise errors.InvalidParameterValueException(_NOT_A_ZIP)


def _read_symlink_target(zf: zipfile.ZipFile, entry: _Entry) -> str:
    if entry.info.file_size > _MAX_SYMLINK_TARGET:
        raise errors.InvalidParameterValueException(_NOT_A_ZIP)
    with zf.open(entry.info) as src:
        raw = src.read(_MAX_SYMLINK_TARGET + 1)
    if not raw or len(raw) > _MAX_SYMLINK_TARGET or b"\0" in raw:
        raise errors.InvalidParameterValueException(_NOT_A_ZIP)
    return os.fsdecode(raw)


class _Extractor:
    """Writes entries below `root` through directory file descriptors.

    Every path component is opened with O_NOFOLLOW relative to its parent's descriptor,
    so a symlink anywhere on the way (made by an earlier entry or by anyone else) stops
    the extraction instead of redirecting it.
    """

    def __init__(self, zf: zipfile.ZipFile, root: Path, limit: int) -> None:
        self.zf = zf
        self.root = root
        self.limit = limit
        self.written = 0

    def run(self, entries: list[_Entry]) -> None:
        dir_modes: dict[tuple[str, ...], int] = {}
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for entry in entries:
                parent_fd = self._open_dir(root_fd, entry.parts[:-1], create=True)
                try:
                    if entry.kind == "dir":
                        self._make_dir(parent_fd, entry.parts[-1])
                        dir_modes[entry.parts] = entry.mode
                    elif entry.kind == "symlink":
                        self._make_symlink(parent_fd, entry)
                    else:
                        self._make_file(parent_fd, entry)
                finally:
                    os.close(parent_fd)
            # Directory modes last, deepest first: a read-only directory in the zip must
            # not stop its own children from being written.
            for parts in sorted(dir_modes, key=len, reverse=True):
                fd = self._open_dir(root_fd, parts, create=False)
                try:
                    os.fchmod(fd, dir_modes[parts])
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)

    def _open_dir(self, root_fd: int, parts: tuple[str, ...], *, create: bool) -> int:
        fd = os.dup(root_fd)
        try:
            for part in parts:
                if create:
                    self._make_dir(fd, part)
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink or a file
                        raise errors.InvalidParameterValueException(_NOT_A_ZIP) from exc
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _make_dir(parent_fd: int, name: str) -> None:
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                raise errors.InvalidParameterValueException(_NOT_A_ZIP) from None

    def _replace_non_dir(self, parent_fd: int, name: str) -> None:
        """A later entry with the same name wins, as with `unzip -o`; directories never lose."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise errors.InvalidParameterValueException(_NOT_A_ZIP)
        os.unlink(name, dir_fd=parent_fd)

    def _make_symlink(self, parent_fd: int, entry: _Entry) -> None:
        target = _read_symlink_target(self.zf, entry)
        self._count(len(os.fsencode(target)))
        name = entry.parts[-1]
        self._replace_non_dir(parent_fd, name)
        os.symlink(target, name, dir_fd=parent_fd)

    def _make_file(self, parent_fd: int, entry: _Entry) -> None:
        name = entry.parts[-1]
        self._replace_non_dir(parent_fd, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
        try:
            with self.zf.open(entry.info) as src:
                while chunk := src.read(_CHUNK):
                    self._count(len(chunk))
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            os.fchmod(fd, entry.mode)
        finally:
            os.close(fd)

    def _count(self, n: int) -> None:
        self.written += n
        if self.written > self.limit:
            raise errors.InvalidParameterValueException(_unzipped_too_large(self.limit))


def _remove_tree(path: Path) -> None:
    """Remove a partly built tree, even one whose directories lost their write permission."""
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if not os.path.islink(sub):  # os.walk lists symlinks to directories here too
                with contextlib.suppress(OSError):
                    os.chmod(sub, 0o700)
    shutil.rmtree(path, ignore_errors=True)
