"""UnprivilegedFiles: work on untrusted trees runs without root's rights, and only that work."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lamina.store.unprivileged import UnprivilegedFiles

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root has privileges to drop")


def test_threads_run_as_the_given_user_without_groups() -> None:
    files = UnprivilegedFiles(65534, 65534)
    try:
        assert files.run(lambda: (os.getresuid(), os.getresgid(), os.getgroups())) == \
            ((65534,) * 3, (65534,) * 3, [])
    finally:
        files.close()
    assert os.getresuid() == (0, 0, 0)


def test_root_only_places_are_out_of_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "secret").write_text("s")
    files = UnprivilegedFiles(65534, 65534)
    try:
        with pytest.raises(PermissionError):
            files.run(os.open, str(private / "planted"), os.O_WRONLY | os.O_CREAT, 0o644)
        with pytest.raises(PermissionError):
            files.run(os.listdir, str(private))
        # even through a descriptor root opened for it, a root-only file stays closed
        fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(PermissionError):
                files.run(lambda: os.open("secret", os.O_WRONLY, dir_fd=fd))
        finally:
            os.close(fd)
    finally:
        files.close()
    assert not (private / "planted").exists()


def test_other_threads_keep_their_privileges() -> None:
    files = UnprivilegedFiles(65534, 65534)
    seen: list[int] = []
    try:
        files.run(os.getpid)
        other = threading.Thread(target=lambda: seen.append(os.geteuid()))
        other.start()
        other.join()
    finally:
        files.close()
    assert seen == [0]


def test_root_is_refused() -> None:
    with pytest.raises(ValueError):
        UnprivilegedFiles(0, 0)
