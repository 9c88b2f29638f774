"""Disk-backed `/tmp` for execution environments, sized by EphemeralStorage.

Each environment gets its own small ext4 filesystem (a sparse image file on a loop
device), so `/tmp` has a hard size (writes past it fail with ENOSPC) and its pages are
ordinary, reclaimable file cache rather than tmpfs pages pinned in the environment's
memory cgroup: the memory limit stays exactly MemorySize, as on AWS. Making one takes
~15 ms, so a few of the default size are kept ready and refilled in the background.
Where loop devices are unavailable, `acquire` returns None and the caller falls back to
a tmpfs counted against memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lamina.sandbox")


@dataclass(frozen=True)
class Scratch:
    size_mb: int
    image: Path
    mountpoint: Path


class ScratchPool:
    def __init__(self, root: Path, *, keep_ready: int = 2, default_mb: int = 512) -> None:
        self._root = root
        self._keep_ready = keep_ready
        self._default_mb = default_mb
        self._ready: dict[int, list[Scratch]] = {}
        self._refilling = False
        self._usable: bool | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Remove what an earlier run left and check that loop mounts work (blocking; then
        call `refill` from the event loop)."""
        self._sweep()
        self._root.mkdir(parents=True, exist_ok=True)
        os.chmod(self._root, 0o700)
        if not (shutil.which("mkfs.ext4") and shutil.which("mount")):
            self._usable = False
        else:
            try:
                self.release_now(self._make(16))
                self._usable = True
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("disk-backed /tmp unavailable (%s); /tmp will be a tmpfs counted as memory", exc)
                self._usable = False

    async def aclose(self) -> None:
        """Wait for pending releases (bounded), then drop the ready ones."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        self.close()

    def close(self) -> None:
        for scratches in self._ready.values():
            for scratch in scratches:
                self.release_now(scratch)
        self._ready.clear()

    @property
    def usable(self) -> bool:
        return bool(self._usable)

    # -- use ----------------------------------------------------------------------------------------
    async def acquire(self, size_mb: int) -> Scratch | None:
        if not self._usable:
            return None
        ready = self._ready.get(size_mb)
        if ready:
            scratch = ready.pop()
            self.refill()
            return scratch
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._make, size_mb)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not make a /tmp of %d MB: %s", size_mb, exc)
            return None

    def release(self, scratch: Scratch) -> None:
        """Unmount and delete, off the event loop."""
        future = asyncio.get_running_loop().run_in_executor(None, self.release_now, scratch)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def release_now(self, scratch: Scratch) -> None:
        subprocess.run(["umount", "-l", str(scratch.mountpoint)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            scratch.mountpoint.rmdir()
        with contextlib.suppress(OSError):
            scratch.image.unlink()

    # -- internals ----------------------------------------------------------------------------------
    def _make(self, size_mb: int) -> Scratch:
        name = uuid.uuid4().hex
        image = self._root / f"{name}.img"
        mountpoint = self._root / name
        with open(image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        try:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0",
                            "-E", "lazy_itable_init=1,nodiscard", str(image)],
                           capture_output=True, check=True, timeout=60)
            mountpoint.mkdir(mode=0o755)
            subprocess.run(["mount", "-o", "loop,nosuid,nodev", str(image), str(mountpoint)],
                           capture_output=True, check=True, timeout=60)
            os.chmod(mountpoint, 0o1777)
            with contextlib.suppress(OSError):
                shutil.rmtree(mountpoint / "lost+found")
        except BaseException:
            self.release_now(Scratch(size_mb, image, mountpoint))
            raise
        return Scratch(size_mb, image, mountpoint)

    def refill(self) -> None:
        """Top up the ready filesystems of the default size in the background."""
        if self._refilling or not self._usable:
            return
        if len(self._ready.get(self._default_mb, [])) >= self._keep_ready:
            return
        self._refilling = True
        future = asyncio.get_running_loop().run_in_executor(None, self._refill)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def _refill(self) -> None:
        try:
            while len(self._ready.get(self._default_mb, [])) < self._keep_ready:
                scratch = self._make(self._default_mb)
                self._ready.setdefault(self._default_mb, []).append(scratch)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not refill the /tmp pool: %s", exc)
        finally:
            self._refilling = False

    def _sweep(self) -> None:
        if not self._root.is_dir():
            return
        for entry in self._root.iterdir():
            if entry.is_dir():
                subprocess.run(["umount", "-l", str(entry)], capture_output=True, check=False)
                with contextlib.suppress(OSError):
                    entry.rmdir()
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
