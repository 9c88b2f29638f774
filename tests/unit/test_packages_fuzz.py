"""Fuzzing the package parser and extractor with hostile archives.

Two generators: archives assembled from dangerous parts (traversal, absolute paths,
links to the host and to each other, duplicates, files and directories of one name,
odd modes), unpacked alone or as a stack of layers; and valid archives with bytes
flipped. Whatever the input, the only errors are AWS-shaped refusals, nothing appears
outside the destination, and what upload validation accepts always extracts.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina import errors, packages
from tests.fuzzing import fuzz, fuzz_settings

pytestmark = [fuzz, pytest.mark.filterwarnings("ignore:Duplicate name")]
REFUSALS = (errors.InvalidParameterValueException, errors.RequestEntityTooLargeException)
LIMIT = 64 * 1024

components = st.sampled_from(["a", "b", "lib", "..", ".", "", "python", "x" * 300, "é", "a\\b"])
names = st.lists(components, min_size=1, max_size=5).map("/".join) | st.sampled_from(["/etc/passwd", "/", "./"])
targets = st.sampled_from(["/etc", "/etc/passwd", "..", "../..", "a", "a/b", "lib", "/", "OUTSIDE", "OUTSIDE/f"])


@st.composite
def entries(draw: st.DrawFn) -> tuple[str, bytes, int]:
    kind = draw(st.sampled_from(["file", "dir", "link"]))
    name = draw(names)
    perm = draw(st.sampled_from([0o644, 0o755, 0o000, 0o555, 0o4755, 0o777]))
    if kind == "dir":
        return name.rstrip("/") + "/", b"", stat.S_IFDIR | perm
    if kind == "link":
        return name, draw(targets).encode(), stat.S_IFLNK | 0o777
    return name, draw(st.binary(max_size=64)), stat.S_IFREG | perm


def build(members: list[tuple[str, bytes, int]], outside: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.replace(b"OUTSIDE", str(outside).encode()))
    return buf.getvalue()


def unpack(archives: list[bytes], root: Path) -> BaseException | None:
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        packages.extract_into(archives, fd, max_unzipped_bytes=LIMIT)
    except REFUSALS as exc:
        return exc
    finally:
        os.close(fd)
    return None


def check_contained(base: Path, outside: Path) -> None:
    assert os.listdir(outside) == ["sentinel"]
    assert (outside / "sentinel").read_text() == "untouched"
    assert sorted(os.listdir(base)) == ["outside", "root"]


@fuzz_settings
@given(layers=st.lists(st.lists(entries(), min_size=1, max_size=8), min_size=1, max_size=3))
def test_hostile_archives_are_refused_or_contained(layers: list[list[tuple[str, bytes, int]]]) -> None:
    base = Path(tempfile.mkdtemp(prefix="lamina-fuzz-"))
    try:
        outside = base / "outside"
        outside.mkdir()
        (outside / "sentinel").write_text("untouched")
        archives = [build(members, outside) for members in layers]
        accepted = []
        for package in archives:
            try:
                packages.inspect_zip(package)
                accepted.append(package)
            except REFUSALS:
                pass
        if len(archives) == 1 and accepted:
            assert unpack(accepted, base / "root") is None  # what upload accepts, extraction builds
        else:
            unpack(accepted, base / "root")
        check_contained(base, outside)
    finally:
        packages.remove_tree(base)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    members = draw(st.lists(entries(), min_size=1, max_size=6))
    data = bytearray(build([m for m in members if not m[0].startswith("/")], Path("/nonexistent")))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@fuzz_settings
@given(data=corrupted())
def test_corrupted_archives_give_aws_errors_only(data: bytes) -> None:
    base = Path(tempfile.mkdtemp(prefix="lamina-fuzz-"))
    try:
        with contextlib.suppress(REFUSALS):
            packages.inspect_zip(data)
        dest = base / "code"
        try:
            packages.extract_zip(data, dest, max_unzipped_bytes=LIMIT)
        except REFUSALS:
            assert os.listdir(base) == []  # a refused package leaves nothing behind
    finally:
        shutil.rmtree(base)
