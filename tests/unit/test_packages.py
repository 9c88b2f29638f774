"""Deployment packages: validation answers as AWS gives them, and extraction that cannot escape."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina import errors, packages
from lamina.packages import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, extract_zip, inspect_zip

NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
SANDBOX_UID = 65534


def build_zip(*entries: tuple[str, bytes | str, int | None]) -> bytes:
    """(name, content, st_mode or None for an entry without Unix attributes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is None:
                info.create_system = 0
                info.external_attr = 0x10 if name.endswith("/") else 0
            else:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, content)
    return buf.getvalue()


def file(name: str, content: bytes | str = b"", perm: int = 0o644) -> tuple[str, bytes | str, int]:
    return name, content, stat.S_IFREG | perm


def directory(name: str, perm: int = 0o755) -> tuple[str, bytes, int]:
    return name.rstrip("/") + "/", b"", stat.S_IFDIR | perm


def symlink(name: str, target: str) -> tuple[str, str, int]:
    return name, target, stat.S_IFLNK | 0o777


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def siblings(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """~300 KB of zip holding one 300 MB member of zeros, built streaming."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("big.bin", date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        chunk = bytes(1 << 20)
        with zf.open(info, "w", force_zip64=True) as out:
            for _ in range(300):
                out.write(chunk)
    data = buf.getvalue()
    assert len(data) < 1_000_000
    return data


# -- inspect_zip ---------------------------------------------------------------------------


def test_inspect_reports_aws_hashes_and_sizes() -> None:
    data = build_zip(file("app.py", "def handler(e, c):\n    return 1\n"),
                     file("bootstrap", "#!/bin/sh\n", 0o755))
    prepared = inspect_zip(data)
    digest = hashlib.sha256(data).digest()
    assert prepared.blob_key == digest.hex()
    assert prepared.sha256_b64 == base64.b64encode(digest).decode()
    assert prepared.size == len(data)
    assert prepared.unzipped_size == len("def handler(e, c):\n    return 1\n") + len("#!/bin/sh\n")


@pytest.mark.parametrize("data", [b"hello, not a zip", b"PK\x03\x04" + b"\0" * 40])
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(data)
    assert caught.value.message == NOT_A_ZIP


def test_truncated_zip() -> None:
    data = build_zip(file("app.py", "x = 1\n" * 1000), file("lib.py", "y = 2\n" * 1000))
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(errors.InvalidParameterValueException) as caught:
            inspect_zip(data[:cut])
        assert caught.value.message == NOT_A_ZIP


def test_corrupt_member_data_is_refused_at_upload() -> None:
    data = bytearray(build_zip(file("app.py", os.urandom(4096))))
    data[100] ^= 0xFF  # inside the compressed data of the only member: CRC or inflate fails
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(bytes(data))
    assert caught.value.message == NOT_A_ZIP


def test_empty_zip() -> None:
    empty = build_zip()
    assert len(empty) == 22  # the end-of-central-directory record alone
    for data in (empty, b""):
        with pytest.raises(errors.InvalidParameterValueException) as caught:
            inspect_zip(data)
        assert caught.value.message == "Uploaded file must be a non-empty zip"


def test_zipped_size_limit() -> None:
    with pytest.raises(errors.RequestEntityTooLargeException) as caught:
        inspect_zip(b"\0" * (MAX_ZIPPED_BYTES + 1))
    assert caught.value.message == "Zipped size must be smaller than 52428800 bytes"
    assert caught.value.status == 413


def test_bomb_is_refused_by_inspect(bomb: bytes) -> None:
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(bomb)
    assert caught.value.message == "Unzipped size must be smaller than 262144000 bytes"


@pytest.mark.parametrize("name", ["../evil.py", "/abs.py", "a/../../evil.py", "a/b/../../../evil.py"])
def test_zip_slip_is_refused(name: str, tmp_path: Path) -> None:
    data = build_zip(file("app.py", "ok"), file(name, "evil"))
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(data)
    assert caught.value.message == NOT_A_ZIP
    dest = tmp_path / "out" / "code"
    with pytest.raises(errors.InvalidParameterValueException):
        extract_zip(data, dest)
    assert not dest.exists()
    assert siblings(dest) == []
    assert not list(tmp_path.rglob("evil.py"))


def test_entry_through_symlink_to_etc_is_refused() -> None:
    data = build_zip(symlink("link", "/etc"), file("link/passwd", "root::0:0::/:/bin/sh\n"))
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(data)
    assert caught.value.message == NOT_A_ZIP


@pytest.mark.parametrize("later", [directory("link"), directory("link/sub"), file("link/x.py", "x")])
def test_symlink_that_is_also_a_directory_is_refused(later: tuple[str, bytes | str, int]) -> None:
    with pytest.raises(errors.InvalidParameterValueException):
        inspect_zip(build_zip(symlink("link", "elsewhere"), later))
    with pytest.raises(errors.InvalidParameterValueException):
        inspect_zip(build_zip(later, symlink("link", "elsewhere")))


def test_encrypted_entry_is_refused() -> None:
    data = bytearray(build_zip(file("app.py", "ciphertext")))
    data[6] |= 0x1  # general purpose flag, bit 0 "encrypted": local header ...
    data[data.rindex(b"PK\x01\x02") + 8] |= 0x1  # ... and central directory
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(bytes(data))
    assert caught.value.message == NOT_A_ZIP


# -- extract_zip ---------------------------------------------------------------------------


def test_extract_keeps_content_and_modes(tmp_path: Path) -> None:
    data = build_zip(
        file("app.py", "print('hi')\n"),
        file("bootstrap", "#!/bin/sh\necho hi\n", 0o755),
        file("pkg/sub/mod.py", "X = 1\n", 0o640),
        directory("assets", 0o750),
        file("assets/logo.txt", "logo"),
    )
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert (dest / "bootstrap").read_text() == "#!/bin/sh\necho hi\n"
    assert mode_of(dest / "bootstrap") == 0o755
    assert os.access(dest / "bootstrap", os.X_OK)
    assert mode_of(dest / "app.py") == 0o644
    assert mode_of(dest / "pkg/sub/mod.py") == 0o640
    assert mode_of(dest / "pkg") == 0o755  # implied directories
    assert mode_of(dest / "pkg/sub") == 0o755
    assert mode_of(dest / "assets") == 0o750
    assert mode_of(dest) == 0o755
    assert siblings(dest) == ["code"]  # the temporary sibling is gone


def test_defaults_without_unix_attributes(tmp_path: Path) -> None:
    data = build_zip(("lib/", b"", None), ("lib/util.py", b"U = 1\n", None), ("app.py", b"A = 1\n", None))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert mode_of(dest / "app.py") == 0o644
    assert mode_of(dest / "lib/util.py") == 0o644
    assert mode_of(dest / "lib") == 0o755


def test_special_bits_are_stripped(tmp_path: Path) -> None:
    data = build_zip(file("suid", "x", 0o4755), file("sgid", "x", 0o2755), directory("sticky", 0o1777))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert mode_of(dest / "suid") == 0o755
    assert mode_of(dest / "sgid") == 0o755
    assert mode_of(dest / "sticky") == 0o777


def test_read_only_directory_still_receives_its_children(tmp_path: Path) -> None:
    data = build_zip(directory("ro", 0o555), file("ro/a.py", "A"), file("ro/deep/b.py", "B"))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert (dest / "ro/deep/b.py").read_text() == "B"
    assert mode_of(dest / "ro") == 0o555


def test_symlinks_are_kept_not_followed(tmp_path: Path) -> None:
    data = build_zip(file("real.py", "R = 1\n"), symlink("alias.py", "real.py"), symlink("etc", "/etc"))
    dest = tmp_path / "code"
    inspect_zip(data)
    extract_zip(data, dest)
    assert os.readlink(dest / "alias.py") == "real.py"
    assert (dest / "alias.py").read_text() == "R = 1\n"
    assert os.readlink(dest / "etc") == "/etc"


def test_extract_refuses_writes_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = build_zip(symlink("link", str(outside)), file("link/passwd", "owned"))
    dest = tmp_path / "out" / "code"
    with pytest.raises(errors.InvalidParameterValueException):
        extract_zip(data, dest)
    assert list(outside.iterdir()) == []
    assert not dest.exists()
    assert siblings(dest) == []


def test_descriptor_walk_refuses_symlinks_on_its_own(tmp_path: Path) -> None:
    """The O_NOFOLLOW walk holds even for a path the up-front check did not see."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    data = build_zip(symlink("link", str(outside)), file("link/passwd", "owned"))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(errors.InvalidParameterValueException), \
                packages._Extractor(fd, MAX_UNZIPPED_BYTES) as extractor:
            extractor.add(zf, packages._entries(zf))
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []
    assert os.path.islink(root / "link")


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_later_duplicate_entry_wins(tmp_path: Path) -> None:
    data = build_zip(file("app.py", "first"), file("app.py", "second", 0o600))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert (dest / "app.py").read_text() == "second"
    assert mode_of(dest / "app.py") == 0o600


def test_backslash_is_part_of_the_name(tmp_path: Path) -> None:
    data = build_zip(file("wwwroot\\app.css", "body{}"))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert [p.name for p in dest.iterdir()] == ["wwwroot\\app.css"]


def test_bomb_is_refused_by_extract(bomb: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "code"
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        extract_zip(bomb, dest)
    assert caught.value.message == "Unzipped size must be smaller than 262144000 bytes"
    assert not dest.exists()
    assert siblings(dest) == []


def test_lying_sizes_never_write_more_than_declared(tmp_path: Path) -> None:
    """A member declaring 1,000 bytes but holding 10 MB: nothing beyond is ever written."""
    data = bytearray(build_zip(file("liar.bin", bytes(10_000_000))))
    assert data[:4] == b"PK\x03\x04"
    struct.pack_into("<I", data, 22, 1000)  # local header: uncompressed size
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)  # central directory: uncompressed size
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(bytes(data))
    assert caught.value.message == NOT_A_ZIP
    dest = tmp_path / "code"
    with pytest.raises(errors.InvalidParameterValueException):
        extract_zip(bytes(data), dest)
    assert not dest.exists()
    assert siblings(dest) == []


def test_extract_limit_applies_to_all_members_together(tmp_path: Path) -> None:
    data = build_zip(file("a.bin", bytes(600_000)), file("b.bin", bytes(600_000)))
    dest = tmp_path / "code"
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        extract_zip(data, dest, max_unzipped_bytes=1_000_000)
    assert caught.value.message == "Unzipped size must be smaller than 1000000 bytes"
    assert not dest.exists()
    assert siblings(dest) == []


def test_existing_destination_is_not_touched(tmp_path: Path) -> None:
    dest = tmp_path / "code"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        extract_zip(build_zip(file("app.py", "x")), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_concurrent_extractions_publish_one_complete_tree(tmp_path: Path) -> None:
    names = [f"pkg/m{i}.py" for i in range(200)]
    data = build_zip(*(file(n, n * 50) for n in names))
    dest = tmp_path / "code"
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            extract_zip(data, dest)
            result = "extracted"
        except FileExistsError:
            result = "exists"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("extracted") == 1
    assert outcomes.count("exists") == 7
    assert sorted(p.name for p in (dest / "pkg").iterdir()) == sorted(n.split("/")[1] for n in names)
    assert all((dest / n).read_text() == n * 50 for n in names)
    assert siblings(dest) == ["code"]


# -- what the unprivileged sandbox user sees ------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the sandbox uid can traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lamina-packages-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def readable_by_sandbox_user(path: Path) -> bool:
    cat = shutil.which("cat") or "/bin/cat"
    result = subprocess.run([cat, str(path)], user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[],
                            check=False, capture_output=True)
    assert result.returncode == 0 or b"Permission denied" in result.stderr, result.stderr
    return result.returncode == 0


def test_mode_000_file_stays_unreadable(tmp_path: Path) -> None:
    data = build_zip(file("app.py", "A = 1\n"), file("secret.py", "S = 1\n", 0o000))
    dest = tmp_path / "code"
    extract_zip(data, dest)
    assert mode_of(dest / "secret.py") == 0
    assert mode_of(dest / "app.py") == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the sandbox uid needs root")
def test_sandbox_user_reads_what_the_zip_allows(shared_dir: Path) -> None:
    data = build_zip(file("app.py", "A = 1\n"), file("secret.py", "S = 1\n", 0o000),
                     file("private.py", "P = 1\n", 0o600))
    dest = shared_dir / "code"
    extract_zip(data, dest)
    assert readable_by_sandbox_user(dest / "app.py")
    assert not readable_by_sandbox_user(dest / "secret.py")
    assert not readable_by_sandbox_user(dest / "private.py")


# -- layers: several packages into one tree, later ones winning -----------------------------


def extract_layers(root: Path, *archives: bytes, limit: int = MAX_UNZIPPED_BYTES) -> None:
    root.mkdir(exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        packages.extract_into(archives, fd, max_unzipped_bytes=limit)
    finally:
        os.close(fd)


def test_later_layer_never_writes_through_an_earlier_layers_symlinks(tmp_path: Path) -> None:
    """The attack: layer A plants links to host paths, layer B has entries of the same
    names. B's entries replace the links; nothing is written where they pointed."""
    host = tmp_path / "host"
    (host / "pwndir").mkdir(parents=True)
    a = build_zip(symlink("evil", str(host / "pwned_file")), symlink("evildir", str(host / "pwndir")),
                  symlink("deep", str(host)))
    b = build_zip(file("evil", "from B"), file("evildir/payload.sh", "#!/bin/sh\n", 0o755),
                  directory("deep"), file("deep/pwned_file", "x"))
    root = tmp_path / "opt"
    extract_layers(root, a, b)
    assert sorted(p.name for p in host.rglob("*")) == ["pwndir"]
    assert (root / "evil").read_text() == "from B" and not (root / "evil").is_symlink()
    assert (root / "evildir" / "payload.sh").read_text() == "#!/bin/sh\n"
    assert not (root / "evildir").is_symlink() and not (root / "deep").is_symlink()


def test_later_layer_replaces_files_and_directories(tmp_path: Path) -> None:
    a = build_zip(directory("lib", 0o555), file("lib/old.so", "old"), directory("lib/sub"), file("lib/sub/x", "x"),
                  file("python/mod.py", "A"), file("bin", "a file"), file("keep.txt", "kept"))
    b = build_zip(symlink("lib", "python"), file("python/mod.py", "B"), directory("bin", 0o700),
                  file("bin/tool", "t", 0o755))
    root = tmp_path / "opt"
    extract_layers(root, a, b)
    assert os.readlink(root / "lib") == "python"
    assert (root / "python" / "mod.py").read_text() == "B"
    assert mode_of(root / "bin") == 0o700 and (root / "bin" / "tool").read_text() == "t"
    assert (root / "keep.txt").read_text() == "kept"


def test_directories_merge_and_later_modes_win(tmp_path: Path) -> None:
    a = build_zip(directory("python", 0o555), file("python/a.py", "A"))
    b = build_zip(directory("python", 0o751), file("python/b.py", "B"))
    root = tmp_path / "opt"
    extract_layers(root, a, b)  # A's read-only directory does not stop B writing into it
    assert sorted(p.name for p in (root / "python").iterdir()) == ["a.py", "b.py"]
    assert mode_of(root / "python") == 0o751


def test_layer_limit_counts_all_layers_together(tmp_path: Path) -> None:
    one = build_zip(file("a.bin", b"x" * 600))
    two = build_zip(file("b.bin", b"y" * 600))
    with pytest.raises(errors.InvalidParameterValueException):
        extract_layers(tmp_path / "opt", one, two, limit=1000)


def test_one_layer_still_refuses_its_own_conflicts(tmp_path: Path) -> None:
    a = build_zip(file("x.py", "A"))
    b = build_zip(directory("x.py"), file("x.py", "B"))  # a directory then a file, in one package
    with pytest.raises(errors.InvalidParameterValueException):
        extract_layers(tmp_path / "opt", a, b)


@pytest.mark.parametrize("name", ["a/" * 129 + "deep.py", "n" * 256 + ".py", ("d" * 200 + "/") * 21 + "x.py"],
                         ids=["too-deep", "name-too-long", "path-too-long"])
def test_paths_linux_cannot_use_are_refused(name: str) -> None:
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(build_zip(file("app.py", "ok"), file(name, "x")))
    assert caught.value.message == NOT_A_ZIP


def test_remove_tree_follows_no_symlink_and_opens_read_only_directories(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "ro" / "sub").mkdir(parents=True)
    (tree / "ro" / "sub" / "f").write_text("x")
    (tree / "link").symlink_to(outside)
    (tree / "ro" / "link").symlink_to(outside / "precious")
    os.chmod(tree / "ro" / "sub", 0o500)
    os.chmod(tree / "ro", 0o500)
    packages.remove_tree(tree)
    assert not tree.exists()
    assert (outside / "precious").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_own_tree_reowns_links_not_their_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("y")
    (tree / "link").symlink_to(outside)
    (tree / "dirlink").symlink_to(tmp_path)
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        packages.own_tree(fd, SANDBOX_UID, SANDBOX_UID)
    finally:
        os.close(fd)
    assert {os.lstat(p).st_uid for p in (tree, tree / "d", tree / "d" / "f", tree / "link", tree / "dirlink")} \
        == {SANDBOX_UID}
    assert os.stat(outside).st_uid == 0 and os.stat(tmp_path).st_uid == 0


def test_too_many_entries_are_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "MAX_ENTRIES", 50)
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        inspect_zip(build_zip(*(file(f"m{i}.py", "") for i in range(51))))
    assert caught.value.message == "Uploaded file must hold at most 50 files and directories"
    inspect_zip(build_zip(*(file(f"m{i}.py", "") for i in range(50))))


@pytest.mark.parametrize("entries", [
    (directory("b"), file("b")), (file("b"), directory("b")), (file("b"), file("b/x.py")),
    (file("b/x.py"), file("b")), (symlink("b", "a"), file("b/x.py")),
], ids=["dir-then-file", "file-then-dir", "file-above-file", "file-below-file", "link-above-file"])
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_path_that_is_both_a_directory_and_not_is_refused_at_upload(
        entries: tuple[tuple[str, bytes | str, int], ...]) -> None:
    """Found by fuzzing: such packages used to pass upload and fail to extract."""
    with pytest.raises(errors.InvalidParameterValueException):
        inspect_zip(build_zip(*entries))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_repeated_files_and_directories_are_fine() -> None:
    inspect_zip(build_zip(file("b", "1"), file("b", "2"), directory("d"), directory("d"), file("d/x"), file("db")))
