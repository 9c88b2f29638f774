"""Threads that touch untrusted file trees with no privilege to spare.

The server runs as root (it makes namespaces and cgroups), but unpacking a package or
merging layers needs none of that. `UnprivilegedFiles` runs such work on threads that,
at birth, give up root for good: each drops its supplementary groups, gid and uid with
the raw system calls, which on Linux change only the calling thread (glibc's wrappers
would change every thread of the server). From then on the kernel checks that thread's
file operations as an ordinary user's: whatever a bug or a hostile archive makes it
write can only land where that user may write, which excludes everything of the
server's. Work is handed the bytes it needs; it cannot read the server's files either.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# (setgroups, setresgid, setresuid) system call numbers
_SYSCALLS = {"x86_64": (116, 119, 117), "aarch64": (159, 149, 147)}


def drop_thread_privileges(uid: int, gid: int) -> None:
    """Make the calling thread (only it) run as uid:gid with no supplementary groups and,
    as a consequence of leaving uid 0, no capabilities. Irreversible for the thread."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise OSError(f"do not know how to drop one thread's privileges on {platform.machine()}")
    setgroups, setresgid, setresuid = numbers
    libc = ctypes.CDLL(None, use_errno=True)
    for number, args in ((setgroups, (0, None)), (setresgid, (gid, gid, gid)), (setresuid, (uid, uid, uid))):
        if libc.syscall(number, *args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"could not drop privileges: {os.strerror(err)}")


class UnprivilegedFiles:
    """A small pool of threads running as `uid`:`gid` (when the server is root; a server
    that is not root has nothing to drop). `run` blocks until the work is done: call it
    off the event loop."""

    def __init__(self, uid: int, gid: int, *, threads: int = 2) -> None:
        if uid == 0 or gid == 0:
            raise ValueError("untrusted trees must not be handled as root")
        self.uid = uid
        self.gid = gid
        self.dropping = os.geteuid() == 0
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="lamina-files",
            initializer=functools.partial(drop_thread_privileges, uid, gid) if self.dropping else None)

    def run(self, work: Callable[..., T], *args: object) -> T:
        return self._pool.submit(work, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
