"""Deployment packages (.zip): validation at upload time and safe extraction.

Invariants: nothing in a package is trusted. `inspect_zip` reads only the central
directory (plus symlink targets) and refuses what AWS refuses; `extract_zip` and
`extract_into` write only below their destination, never follow a symlink (not even one
an earlier layer made), count the bytes they actually inflate (not the sizes the archive
declares); `extract_zip` publishes the tree with one atomic rename, so a reader sees
either nothing or the whole tree.

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
  The same answer for paths Linux could not open (a name over 255 bytes, a path over
  4096) and for paths deeper than 128 directories, which no real package has.
- over 100,000 entries: AWS documents no limit; Lamina refuses such a package (400
  InvalidParameterValueException saying so) so that no upload can exhaust the host's
  inodes. The archive's directory is parsed before it is counted, so parsing memory is
  bounded by the 50 MiB zipped limit, not by this.
- backslashes are not path separators: AWS keeps `a\\b.py` as one literal file name
  (a known pitfall of Windows' Compress-Archive), and so does Lamina.
- Unix permission bits are kept (AWS's guide warns that files without world read
  permission make the function fail); setuid/setgid/sticky bits are dropped; entries
  without Unix attributes get 0644 (files) and 0755 (directories). Symlinks are kept.
"""

from __future__ import annotations

import base64
import contextlib
import encodings.cp437  # noqa: F401 - zip names without the UTF-8 flag; see _open_zip
import errno
import hashlib
import io
import itertools
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lamina import errors

MAX_ZIPPED_BYTES = 52_428_800
MAX_UNZIPPED_BYTES = 262_144_000

# A symlink's target is its entry's content; real targets are short path strings.
_MAX_SYMLINK_TARGET = 4096
# Paths the function could not open anyway (Linux's PATH_MAX and NAME_MAX), and a depth
# no real package reaches, which bounds every walk over an extracted tree.
MAX_DEPTH = 128
# Files a package may hold: far more than real packages have (a large node_modules has a
# few tens of thousands), few enough that no upload can exhaust the host's inodes.
MAX_ENTRIES = 100_000
_MAX_PATH = 4096
_MAX_NAME = 255
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
        entries = _checked_entries(zf, MAX_UNZIPPED_BYTES)
        if not entries:
            raise errors.InvalidParameterValueException(_EMPTY_ZIP)
        unzipped = sum(e.info.file_size for e in entries)
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
        _checked_entries(zf, max_unzipped_bytes)  # refuse before making anything
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            extract_into([data], fd, max_unzipped_bytes=max_unzipped_bytes)
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            if dest.exists():
                raise FileExistsError(str(dest)) from exc
            raise
    except BaseException:
        remove_tree(tmp)
        raise


def extract_into(packages: Iterable[bytes | BinaryIO], root_fd: int, *,
                 max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> None:
    """Extract each package in turn into the directory open at `root_fd`, later ones
    winning as in an overlay file system (layers under /opt): a later file or symlink
    replaces whatever an earlier package put at its path (a directory with everything
    below it), a later directory replaces an earlier file or symlink and merges with an
    earlier directory. Within one package the rules of a single extraction hold (see
    `_Extractor`). Nothing is ever written through a symlink, whichever package made it;
    `max_unzipped_bytes` bounds all packages together. Not atomic: build in a private
    directory and publish it with a rename. Every path is resolved below `root_fd`, so
    the caller needs no permission on the directories above it.
    """
    with _Extractor(root_fd, max_unzipped_bytes) as extractor:
        for package in packages:
            with _open_zip(package) as zf:
                extractor.add(zf, _checked_entries(zf, max_unzipped_bytes))


def own_tree(root_fd: int, uid: int, gid: int) -> None:
    """Give the tree open at `root_fd` to uid:gid, never following a symlink in it (links
    themselves are re-owned). Trees from packages are at most `MAX_DEPTH` deep."""
    os.fchown(root_fd, uid, gid)
    for name in os.listdir(root_fd):
        if stat.S_ISDIR(os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mode):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
            try:
                own_tree(child, uid, gid)
            finally:
                os.close(child)
        else:
            os.chown(name, uid, gid, dir_fd=root_fd, follow_symlinks=False)


def remove_tree(path: Path) -> None:
    """Remove `path` and everything below it through directory descriptors: no symlink in
    it is ever followed, and directories a package made read-only are opened up first
    (the caller owns the tree or is root). Trees from packages are at most `MAX_DEPTH`
    deep, so the recursion is bounded."""
    path = Path(path)
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_entry(parent, path.name)
    except FileNotFoundError:
        pass
    finally:
        os.close(parent)


def _remove_entry(parent_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent_fd)
        return
    except IsADirectoryError:
        pass
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o700)
        for child in os.listdir(fd):
            _remove_entry(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


# What zipfile raises for archives it cannot read: bad structure, corrupt deflate data,
# CRC mismatch, unsupported compression, encryption.
_CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError, ValueError)
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


@contextlib.contextmanager
def _open_zip(package: bytes | BinaryIO) -> Iterator[zipfile.ZipFile]:
    # Extraction may run on a thread that can no longer read the standard library (see
    # lamina.store.unprivileged): the codec zipfile needs is imported at the top instead.
    try:
        zf = zipfile.ZipFile(io.BytesIO(package) if isinstance(package, bytes) else package)
    except (*_CORRUPT, OSError) as exc:
        raise errors.InvalidParameterValueException(_NOT_A_ZIP) from exc
    with zf:
        try:
            yield zf
        except _CORRUPT as exc:
            raise errors.InvalidParameterValueException(_NOT_A_ZIP) from exc


def _checked_entries(zf: zipfile.ZipFile, max_unzipped_bytes: int) -> list[_Entry]:
    """The package's entries, once the checks that need no inflating have passed."""
    entries = _entries(zf)
    if sum(e.info.file_size for e in entries) > max_unzipped_bytes:
        raise errors.InvalidParameterValueException(_unzipped_too_large(max_unzipped_bytes))
    _refuse_conflicts(entries)
    return entries


def _entries(zf: zipfile.ZipFile) -> list[_Entry]:
    if len(zf.infolist()) > MAX_ENTRIES:
        raise errors.InvalidParameterValueException(
            f"Uploaded file must hold at most {MAX_ENTRIES} files and directories")
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
    if ".." in parts or len(parts) > MAX_DEPTH or len(os.fsencode(name)) > _MAX_PATH \
            or any(len(os.fsencode(p)) > _MAX_NAME for p in parts):
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


def _refuse_conflicts(entries: list[_Entry]) -> None:
    """A path is either a directory (an entry of its own, or above another entry) or not
    (a file or a link, possibly repeated: the last one wins); a package that makes one
    path both could only be extracted by writing through a link or dropping entries.
    Sorted by path, an entry's descendants follow it directly, so neighbours suffice:
    linear memory, whatever the package."""
    ordered = sorted(entries, key=lambda e: e.parts)
    for before, after in itertools.pairwise(ordered):
        if before.parts == after.parts:
            conflict = (before.kind == "dir") != (after.kind == "dir")
        else:
            conflict = before.kind != "dir" and after.parts[:len(before.parts)] == before.parts
        if conflict:
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
    """Writes entries below the directory open at `root_fd` through directory descriptors.

    Every path component is opened with O_NOFOLLOW relative to its parent's descriptor,
    so a symlink anywhere on the way (made by an earlier entry, an earlier package or
    anyone else) stops the extraction instead of redirecting it; files are created with
    O_EXCL and O_NOFOLLOW, and whatever they replace is unlinked, never opened. What an
    earlier package (an earlier `add`) left at a path is replaced as `extract_into`
    describes; within one package a file and a directory of the same name are refused.
    Directory modes are applied on leaving the context, deepest first, so that a
    read-only directory does not stop its own children (or a later package) from being
    written.
    """

    def __init__(self, root_fd: int, limit: int) -> None:
        self.limit = limit
        self.written = 0
        self._root_fd = os.dup(root_fd)
        self._dir_modes: dict[tuple[str, ...], int] = {}
        self._ours: set[tuple[str, ...]] = set()  # paths made by the package being added

    def __enter__(self) -> _Extractor:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                for parts in sorted(self._dir_modes, key=len, reverse=True):
                    fd = self._open_dir(parts, create=False)
                    try:
                        os.fchmod(fd, self._dir_modes[parts])
                    finally:
                        os.close(fd)
        finally:
            os.close(self._root_fd)

    def add(self, zf: zipfile.ZipFile, entries: list[_Entry]) -> None:
        self._ours = set()
        for entry in entries:
            parent_fd = self._open_dir(entry.parts[:-1], create=True)
            try:
                if entry.kind == "dir":
                    self._make_dir(parent_fd, entry.parts)
                    self._dir_modes[entry.parts] = entry.mode
                elif entry.kind == "symlink":
                    target = _read_symlink_target(zf, entry)
                    self._count(len(os.fsencode(target)))
                    self._clear(parent_fd, entry.parts)
                    os.symlink(target, entry.parts[-1], dir_fd=parent_fd)
                else:
                    self._clear(parent_fd, entry.parts)
                    self._write_file(zf, parent_fd, entry)
            finally:
                os.close(parent_fd)
            self._ours.add(entry.parts)

    def _open_dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        fd = os.dup(self._root_fd)
        try:
            for depth in range(1, len(parts) + 1):
                if create:
                    self._make_dir(fd, parts[:depth])
                try:
                    child = os.open(parts[depth - 1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    dir_fd=fd)
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

    def _make_dir(self, parent_fd: int, parts: tuple[str, ...]) -> None:
        name = parts[-1]
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                if not self._replaceable(parts):
                    raise errors.InvalidParameterValueException(_NOT_A_ZIP) from None
                os.unlink(name, dir_fd=parent_fd)  # an earlier package's file or symlink
                os.mkdir(name, 0o755, dir_fd=parent_fd)
        self._ours.add(parts)

    def _clear(self, parent_fd: int, parts: tuple[str, ...]) -> None:
        """Make room for a file or symlink. Within one package a later entry with the same
        name wins, as with `unzip -o`, but directories never lose; over an earlier
        package, everything loses."""
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent_fd)
        elif self._replaceable(parts):
            _remove_entry(parent_fd, name)
            for below in [p for p in self._dir_modes if p[:len(parts)] == parts]:
                del self._dir_modes[below]
        else:
            raise errors.InvalidParameterValueException(_NOT_A_ZIP)

    def _replaceable(self, parts: tuple[str, ...]) -> bool:
        return parts not in self._ours

    def _write_file(self, zf: zipfile.ZipFile, parent_fd: int, entry: _Entry) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(entry.parts[-1], flags, 0o600, dir_fd=parent_fd)
        try:
            with zf.open(entry.info) as src:
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
