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


def make_raw_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    """(name, content, full st_mode): symlinks included."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content, st_mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = st_mode << 16
            zf.writestr(info, content)
    return buf.getvalue()


def test_merging_layers_never_writes_where_an_earlier_layers_links_point(blobs: FileBlobStore,
                                                                          tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "pwndir").mkdir(parents=True)
    link = stat.S_IFLNK | 0o777
    a = blobs.put(make_raw_zip([("evil", str(host / "pwned_file").encode(), link),
                                ("evildir", str(host / "pwndir").encode(), link)]))
    b = blobs.put(make_raw_zip([("evil", b"from B", stat.S_IFREG | 0o644),
                                ("evildir/payload.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o755)]))
    merged = blobs.merged([a, b])
    assert [p.name for p in host.rglob("*")] == ["pwndir"]
    assert (merged / "evil").read_bytes() == b"from B"
    assert (merged / "evildir" / "payload.sh").read_bytes() == b"#!/bin/sh\n"
    assert mode_of(merged) == 0o755 and mode_of(merged.parent) == 0o711
    # the other order keeps B's links, as links: nothing is followed either way
    reverse = blobs.merged([b, a])
    assert reverse != merged
    assert os.readlink(reverse / "evil") == str(host / "pwned_file")
    assert [p.name for p in host.rglob("*")] == ["pwndir"]


def test_merged_is_cached_and_later_layers_win(blobs: FileBlobStore) -> None:
    a = blobs.put(make_zip({"python/mod.py": (b"A", 0o644), "python/only_a.py": (b"a", 0o644)}))
    b = blobs.put(make_zip({"python/mod.py": (b"B", 0o644)}))
    merged = blobs.merged([a, b])
    assert (merged / "python" / "mod.py").read_bytes() == b"B"
    assert (merged / "python" / "only_a.py").read_bytes() == b"a"
    inode = os.stat(merged / "python" / "mod.py").st_ino
    assert blobs.merged([a, b]) == merged
    assert os.stat(merged / "python" / "mod.py").st_ino == inode
    assert [p.name for p in merged.parent.iterdir()] == [merged.name]  # no staging left behind


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server has privileges to drop")
def test_trees_are_unpacked_unprivileged_and_published_as_root(blobs: FileBlobStore) -> None:
    key = blobs.put(make_zip({"app.py": (b"A = 1\n", 0o644), "pkg/mod.py": (b"", 0o600)}))
    tree = blobs.extracted(key)
    owners = {os.lstat(p).st_uid for p in (tree, tree / "app.py", tree / "pkg", tree / "pkg" / "mod.py")}
    assert owners == {0}
    assert blobs._files.run(os.geteuid) == 65534  # the unpacking threads are not root
    assert os.geteuid() == 0  # and the rest of the process still is


def test_staging_trees_of_a_crashed_run_are_removed(blobs: FileBlobStore) -> None:
    stale = blobs.root / "code" / f".{'0' * 64}.abc.tmp"
    (stale / "sub").mkdir(parents=True)
    os.chmod(stale / "sub", 0o500)
    FileBlobStore(blobs.root)
    assert not stale.exists()


def test_every_compression_and_name_encoding_unpacks_on_the_unprivileged_threads(blobs: FileBlobStore) -> None:
    """Those threads cannot import anything the server has not loaded (the standard
    library may be unreadable to them): every codec a package can need is loaded."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, method in (("stored.txt", zipfile.ZIP_STORED), ("deflated.txt", zipfile.ZIP_DEFLATED),
                             ("bzip2.txt", zipfile.ZIP_BZIP2), ("lzma.txt", zipfile.ZIP_LZMA)):
            zf.writestr(zipfile.ZipInfo(name), name.upper() * 10, compress_type=method)
    data = bytearray(buf.getvalue())
    # a name without the UTF-8 flag: a byte above 0x7f is read as cp437
    data = bytearray(bytes(data).replace(b"stored.txt", b"st\x81red.txt"))
    tree = blobs.extracted(blobs.put(bytes(data)))
    assert sorted(p.name for p in tree.iterdir()) == ["bzip2.txt", "deflated.txt", "lzma.txt", "stüred.txt"]
    assert (tree / "lzma.txt").read_text() == "LZMA.TXT" * 10
