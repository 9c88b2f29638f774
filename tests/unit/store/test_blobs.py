"""FileBlobStore: content addressing, atomic durable writes, extracted trees and their modes."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from lamina import errors
from lamina.store.blobs import FileBlobStore
from lamina.store.protocols import BlobStore


def make_zip(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (content, perm) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | perm) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "store")


def test_put_get_round_trip(blobs: FileBlobStore) -> None:
    data = b"some bytes \x00\xff"
    key = blobs.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert blobs.exists(key)
    assert blobs.get(key) == data
    assert blobs.path(key).read_bytes() == data


def test_put_is_idempotent_and_leaves_no_temporaries(blobs: FileBlobStore) -> None:
    key1 = blobs.put(b"same")
    key2 = blobs.put(b"same")
    assert key1 == key2
    assert [p.name for p in blobs.path(key1).parent.iterdir()] == [key1]


def test_missing_and_malformed_keys(blobs: FileBlobStore) -> None:
    missing = "0" * 64
    assert not blobs.exists(missing)
    with pytest.raises(KeyError):
        blobs.get(missing)
    with pytest.raises(KeyError):
        blobs.extracted(missing)
    for bad in ("../../etc/passwd", "ABC", "g" * 64, "0" * 63, ""):
        with pytest.raises(ValueError):
            blobs.path(bad)
        with pytest.raises(ValueError):
            blobs.extracted(bad)


def test_blobs_are_private_and_code_is_reachable(blobs: FileBlobStore) -> None:
    key = blobs.put(make_zip({"app.py": (b"A = 1\n", 0o644)}))
    assert mode_of(blobs.root) == 0o711
    assert mode_of(blobs.path(key).parent) == 0o700
    assert mode_of(blobs.path(key)) == 0o600
    tree = blobs.extracted(key)
    assert mode_of(tree.parent) == 0o711
    assert mode_of(tree) == 0o755
    assert mode_of(tree / "app.py") == 0o644


def test_extracted_tree_keeps_zip_modes(blobs: FileBlobStore) -> None:
    key = blobs.put(make_zip({"bootstrap": (b"#!/bin/sh\n", 0o755), "locked.py": (b"", 0o000)}))
    tree = blobs.extracted(key)
    assert (tree / "bootstrap").read_bytes() == b"#!/bin/sh\n"
    assert mode_of(tree / "bootstrap") == 0o755
    assert mode_of(tree / "locked.py") == 0


def test_extracted_is_cached_by_content(blobs: FileBlobStore) -> None:
    key = blobs.put(make_zip({"app.py": (b"A = 1\n", 0o644)}))
    first = blobs.extracted(key)
    marker_inode = os.stat(first / "app.py").st_ino
    second = blobs.extracted(key)
    assert first == second
    assert os.stat(second / "app.py").st_ino == marker_inode  # not extracted again
    reopened = FileBlobStore(blobs.root)
    assert reopened.extracted(key) == first
    assert reopened.get(key) == blobs.get(key)


def test_concurrent_extracted_callers_share_one_tree(blobs: FileBlobStore) -> None:
    files = {f"m{i}.py": (f"X = {i}\n".encode(), 0o644) for i in range(300)}
    key = blobs.put(make_zip(files))
    results: list[Path] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        try:
            path = blobs.extracted(key)
            # whoever returns sees the complete tree, never a partial one
            assert len(list(path.iterdir())) == 300
            with lock:
                results.append(path)
        except BaseException as exc:  # pragma: no cover - reported below
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(set(results)) == 1 and len(results) == 8
    assert [p.name for p in results[0].parent.iterdir()] == [key]


def test_extracting_a_bad_blob_leaves_nothing(blobs: FileBlobStore) -> None:
    key = blobs.put(b"definitely not a zip")
    with pytest.raises(errors.InvalidParameterValueException):
        blobs.extracted(key)
    assert list((blobs.root / "code").iterdir()) == []


def test_satisfies_the_protocol(blobs: FileBlobStore) -> None:
    typed: BlobStore = blobs  # checked by mypy
    assert not typed.exists("0" * 64)
