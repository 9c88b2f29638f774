"""Fixtures for the runtime image tests: the shared image cache (`make setup` fills it, so these
tests are fast when it is warm) and a minimal recipe for builds of their own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lamina.runtimes.images import ImageStore
from lamina.runtimes.recipes import Recipe

# the runtimes `make setup` builds (its RUNTIMES)
SETUP_RUNTIMES = ("python3.11", "python3.13", "nodejs20.x", "nodejs22.x", "provided.al2023")

# the smallest image a real build makes: Debian's minbase, nothing added
MINIMAL = Recipe(runtime="test-minbase", family="provided", version="", suite="bookworm",
                 smoke=("/bin/cat", "/etc/debian_version"))


def shared_dir() -> Path:
    """The cache `make setup` and the test suite share (LAMINA_RUNTIMES_DIR, as the Makefile sets it)."""
    return Path(os.environ.get("LAMINA_RUNTIMES_DIR") or Path.home() / ".cache/lamina/runtimes").expanduser()


@pytest.fixture(scope="session")
def shared_store() -> ImageStore:
    return ImageStore(shared_dir(), os.environ.get("LAMINA_DEBIAN_MIRROR") or None)


def copy_tree(source: Path, target: Path) -> None:
    """`cp -a`: links stay links, special files stay special (never read as data)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--", str(source), str(target)], check=True, timeout=120)
