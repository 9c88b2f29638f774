"""Disk-backed `/tmp` for execution environments, sized by EphemeralStorage.

Each environment gets its own small ext4 filesystem: a sparse image file on a loop
device, mounted only inside the environment's own mount namespace (the host's mount
table does not grow with the number of environments). `/tmp` thus has a hard size
(writes past it fail with ENOSPC), and its pages are ordinary, reclaimable file cache
rather than tmpfs pages pinned in the environment's memory cgroup: the memory limit
stays exactly MemorySize, as on AWS. Making one copies ~300 KiB of an empty template
filesystem and attaches it to a loop device, without starting a process; a few of the
default size are kept ready anyway. Where loop devices are unavailable, `acquire`
returns None and the caller falls back to a tmpfs counted against memory. Releases and
refills run off the event loop as supervised tasks; `aclose` waits for them (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lamina.tasks import Supervisor

log = logging.getLogger("lamina.sandbox")


@dataclass(frozen=True)
class Scratch:
    size_mb: int
    image: Path
    device: str  # /dev/loopN, not mounted on the host


class ScratchPool:
    def __init__(self, root: Path, *, supervisor: Supervisor, owner: tuple[int, int] = (65534, 65534),
                 keep_ready: int = 2, default_mb: int = 512) -> None:
        self._root = root
        self._supervisor = supervisor
        self._owner = owner
        self._keep_ready = keep_ready
        self._default_mb = default_mb
        self._ready: dict[int, list[Scratch]] = {}
        self._refilling = False
        self._usable: bool | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Remove what an earlier run left and check that loop mounts work (blocking; then
        call `refill` from the event loop)."""
        self._sweep()
        self._root.mkdir(parents=True, exist_ok=True)
        os.chmod(self._root, 0o700)
        if not (shutil.which("mkfs.ext4") and os.path.exists("/dev/loop-control")):
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
        self._off_loop(lambda: self.release_now(scratch), f"release {scratch.device or scratch.image.name}")

    def _off_loop(self, work: Callable[[], None], name: str) -> None:
        task = self._supervisor.spawn(asyncio.to_thread(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release_now(self, scratch: Scratch) -> None:
        # a device still mounted in a dying sandbox is detached once that mount goes
        if scratch.device:
            _detach(scratch.device)
        with contextlib.suppress(OSError):
            scratch.image.unlink()

    # -- internals ----------------------------------------------------------------------------------
    def _make(self, size_mb: int) -> Scratch:
        """Copy the data extents of an empty filesystem of this size (a few hundred KiB of a
        sparse image) and attach the copy to a free loop device: no process is started."""
        template = self._template(size_mb)
        image = self._root / f"{uuid.uuid4().hex}.img"
        scratch = Scratch(size_mb, image, "")
        try:
            _sparse_copy(template, image)
            scratch = Scratch(size_mb, image, _attach(image))
        except BaseException:
            self.release_now(scratch)
            raise
        return scratch

    def _template(self, size_mb: int) -> Path:
        template = self._root / f"template-{size_mb}.ext4"
        if template.exists():
            return template
        staging = self._root / f".{uuid.uuid4().hex}.ext4"
        try:
            with open(staging, "wb") as f:
                f.truncate(size_mb * 1024 * 1024)
            uid, gid = self._owner
            subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0",
                            "-E", f"lazy_itable_init=1,nodiscard,root_owner={uid}:{gid}", str(staging)],
                           capture_output=True, check=True, timeout=60)
            os.rename(staging, template)
        finally:
            with contextlib.suppress(OSError):
                staging.unlink()
        return template

    def refill(self) -> None:
        """Top up the ready filesystems of the default size in the background."""
        if self._refilling or not self._usable:
            return
        if len(self._ready.get(self._default_mb, [])) >= self._keep_ready:
            return
        self._refilling = True
        self._off_loop(self._refill, "refill the /tmp pool")

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
        root = str(self._root.resolve())
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            with contextlib.suppress(OSError):
                if backing.read_text().strip().startswith(root + "/"):
                    _detach(f"/dev/{backing.parent.parent.name}")
        for entry in self._root.iterdir():
            with contextlib.suppress(OSError):
                entry.unlink()


_LOOP_SET_FD = 0x4C00
_LOOP_CLR_FD = 0x4C01
_LOOP_CTL_GET_FREE = 0x4C82


def _sparse_copy(source: Path, target: Path) -> None:
    """Copy only the data extents of a sparse file; the holes stay holes."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after offset
                    break
                end = os.lseek(src, start, os.SEEK_HOLE)
                while start < end:
                    chunk = os.pread(src, min(end - start, 1 << 20), start)
                    os.pwrite(dst, chunk, start)
                    start += len(chunk)
                offset = end
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _attach(image: Path) -> str:
    """Attach `image` to a free loop device (ioctls on /dev/loop-control and the device)."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(16):  # another process may take the free device first
                number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(fd, _LOOP_SET_FD, backing)
                    return device
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                finally:
                    os.close(fd)
            raise OSError(errno.EBUSY, "no free loop device")
        finally:
            os.close(control)
    finally:
        os.close(backing)


def _detach(device: str) -> None:
    """Detach a loop device; one still mounted somewhere goes when its last mount does."""
    with contextlib.suppress(OSError):
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _LOOP_CLR_FD)
        finally:
            os.close(fd)


_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 430, 431, 432  # the same on x86_64 and aarch64
_FSOPEN_CLOEXEC, _FSMOUNT_CLOEXEC = 0x1, 0x1
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 1, 6
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x2, 0x4
_libc = ctypes.CDLL(None, use_errno=True)


def _syscall_fd(number: int, *args: object) -> int:
    fd: int = _libc.syscall(number, *args)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def detached_mount(device: str) -> int:
    """Mount a scratch device's ext4 without attaching it anywhere: an fd that another
    mount namespace (a forked environment's) attaches at its /tmp with move_mount."""
    fs = _syscall_fd(_SYS_FSOPEN, b"ext4", _FSOPEN_CLOEXEC)
    try:
        if _libc.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"source", device.encode(), 0) != 0 \
                or _libc.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {device}: {os.strerror(err)}")
        mount = _syscall_fd(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV)
    finally:
        os.close(fs)
    with contextlib.suppress(OSError):
        os.rmdir("lost+found", dir_fd=mount)
    return mount
