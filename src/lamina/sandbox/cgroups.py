"""Cgroups of one execution environment.

Limits live in cgroup v1 (memory, pids, cpu); freeze, thaw, kill-all and "is it empty"
use the cgroup2 mount's core files, which work here without controllers. All groups of
Lamina sit under a `lamina/<instance>` parent in each hierarchy so that a crashed server's
leftovers can be found and removed at the next start.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")
UNIFIED = "unified"
CPU_SHARES_PER_VCPU = 1024
MB_PER_VCPU = 1769


def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str) -> str:
    """A cgroup file's content (they are a few lines: no buffered file object needed)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpu_shares: int


def limits_for(memory_mb: int, tmp_mb: int, pids: int) -> CgroupLimits:
    """Memory covers the function's MemorySize plus its tmpfs /tmp (tmpfs pages are
    charged to the group); CPU is proportional to memory as on AWS (1,769 MB = 1 vCPU)."""
    shares = max(2, CPU_SHARES_PER_VCPU * memory_mb // MB_PER_VCPU)
    return CgroupLimits((memory_mb + tmp_mb) * 1024 * 1024, pids, shares)


class CgroupSet:
    """The cgroups of one environment: created by `create`, removed by `destroy` (idempotent)."""

    def __init__(self, base: str, name: str) -> None:
        self.name = name
        self.v1 = {c: CGROUP_ROOT / c / base / name for c in V1_CONTROLLERS}
        self.unified = CGROUP_ROOT / UNIFIED / base / name
        # the files every warm invocation touches, as strings once (a path join costs more than the read)
        self._freeze_file = str(self.unified / "cgroup.freeze")
        self._max_usage_file = str(self.v1["memory"] / "memory.max_usage_in_bytes")

    @property
    def procs_files(self) -> list[str]:
        """Files the environment's first process writes its pid into (before exec)."""
        return [str(p / "cgroup.procs") for p in (*self.v1.values(), self.unified)]

    def attach(self, pid: int) -> None:
        """Move a running process (and the children it starts later) into every group."""
        for path in self.procs_files:
            _write(Path(path), str(pid))

    def create(self, limits: CgroupLimits) -> None:
        for path in (*self.v1.values(), self.unified):
            path.mkdir(parents=True, exist_ok=True)
        mem = self.v1["memory"]
        # memsw must be raised after the plain limit when growing and before it when shrinking;
        # a fresh group starts unlimited, so plain first is right.
        _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
        with contextlib.suppress(FileNotFoundError, PermissionError, OSError):
            _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        with contextlib.suppress(OSError):
            _write(mem / "memory.swappiness", "0")
        _write(self.v1["pids"] / "pids.max", str(limits.pids))
        _write(self.v1["cpu"] / "cpu.shares", str(limits.cpu_shares))

    def freeze(self) -> None:
        _write(self._freeze_file, "1")

    def thaw(self) -> None:
        _write(self._freeze_file, "0")

    def kill(self) -> None:
        """Kill every process in the environment (works while frozen)."""
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            _write(self.unified / "cgroup.kill", "1")

    def populated(self) -> bool:
        try:
            return "populated 1" in _read(self.unified / "cgroup.events")
        except OSError:
            return False

    def max_memory_used(self) -> int:
        try:
            return int(_read(self._max_usage_file))
        except (OSError, ValueError):
            return 0

    def oom_killed(self, sigkilled: bool = False) -> bool:
        """Did the kernel's OOM killer act in this group? The kernel counts the kill only
        after sending SIGKILL, so a process may be seen dead before the counter moves: a
        SIGKILLed process in a group that hit its limit is taken as an OOM kill too."""
        memory = self.v1["memory"]
        try:
            for line in _read(memory / "memory.oom_control").splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
            if sigkilled:
                return any(int(_read(memory / name)) > 0 for name in ("memory.failcnt", "memory.memsw.failcnt"))
        except (OSError, ValueError):
            pass
        return False

    def destroy(self, wait: float = 2.0) -> None:
        """Kill what is left and remove the groups. Calling it again is a harmless no-op.
        Never raises: it is the last clean-up, run off the event loop, and what it cannot
        remove a later start's `sweep` removes."""
        with contextlib.suppress(OSError):
            self.kill()
        deadline = time.monotonic() + wait
        while self.populated() and time.monotonic() < deadline:
            time.sleep(0.002)
        for path in (self.unified, *self.v1.values()):
            with contextlib.suppress(FileNotFoundError, OSError):
                path.rmdir()


def sweep(base: str) -> None:
    """Remove what servers that are no longer running left under `base/<pid>`.

    Groups of live servers (another Lamina on the same host) are left alone."""
    for hierarchy in (UNIFIED, *V1_CONTROLLERS):
        root = CGROUP_ROOT / hierarchy / base
        if not root.is_dir():
            continue
        for owner in root.iterdir():
            if not owner.is_dir() or (owner.name.isdigit() and _alive(int(owner.name))):
                continue
            for child in owner.iterdir():
                if child.is_dir():
                    CgroupSet(f"{base}/{owner.name}", child.name).destroy(wait=0.5)
            with contextlib.suppress(OSError):
                owner.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def favour_dynamic_moves() -> bool:
    """Moving a task into a cgroup waits for an RCU grace period (6-20 ms) unless the
    cgroup2 hierarchy is mounted with `favordynmods`; every environment start moves one
    task, so ask for it (a host-wide mount option; harmless to other users of cgroups)."""
    mount_point = str(CGROUP_ROOT / UNIFIED)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if fields[1] == mount_point:
                    if "favordynmods" in fields[3].split(","):
                        return True
                    break
            else:
                return False
    except OSError:
        return False
    done = subprocess.run(["mount", "-o", "remount,favordynmods", mount_point], capture_output=True, check=False)
    return done.returncode == 0


def available() -> bool:
    return all((CGROUP_ROOT / c).is_dir() for c in (*V1_CONTROLLERS, UNIFIED))
