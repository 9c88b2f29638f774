"""Linux execution environments: bubblewrap namespaces + Lamina's own cgroups.

`spawn` starts one sandboxed process tree. Its first process joins the environment's
network namespace (where the Runtime API already listens), enters the environment's
cgroups and drops to the unprivileged sandbox uid *before* exec'ing bubblewrap, so
nothing inside maps to host root. bubblewrap then builds the mount/pid/ipc/uts/user
namespaces, installs the seccomp filter (with no_new_privs) and execs the runtime.
Options (which carry environment variables) go over a pipe, never on a command line.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import SandboxError
from lamina.sandbox.cgroups import CgroupSet
from lamina.sandbox.netns import CLONE_NEWNET, libc, setns, unshare
from lamina.sandbox.seccomp import build_filter

# Host files a runtime needs besides /usr (dynamic loader cache, time zones, TLS roots,
# user database). Nothing secret: /etc/shadow and friends are never bound.
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/hosts", "/etc/passwd", "/etc/group", "/etc/ssl",
    "/etc/ca-certificates", "/etc/alternatives", "/etc/mime.types",
)

SECCOMP_FILTER = build_filter()
# Where function trees are staged for bwrap inside the first process's own mount namespace.
STAGING = "/run"
CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class SandboxSpec:
    """What one environment runs and sees."""

    code_dir: Path                   # bound read-only at /var/task
    argv: Sequence[str]              # the runtime command, as seen inside
    env: dict[str, str]
    tmp_mb: int
    runtime_dir: Path | None = None  # bound read-only at /var/runtime
    extra_ro_binds: tuple[tuple[str, str], ...] = ()
    tmp_device: str | None = None    # an ext4 block device mounted at /tmp; None: a tmpfs of tmp_mb
    uid: int = 65534
    gid: int = 65534
    hostname: str = "localhost"


@dataclass
class SandboxProcess:
    """A running sandbox: bwrap's pid (and pidfd), the read end of its output pipe."""

    popen: subprocess.Popen[bytes]
    pidfd: int
    output_fd: int
    cgroups: CgroupSet

    @property
    def pid(self) -> int:
        return self.popen.pid

    def close_fds(self) -> None:
        for fd in (self.pidfd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfd = self.output_fd = -1


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if not path:
        raise SandboxError("bubblewrap (bwrap) is not installed; run `make setup`")
    return path


def bwrap_args(spec: SandboxSpec, seccomp_fd: int | None, staged: dict[str, str]) -> list[str]:
    """bwrap's options. Function-specific trees come from `staged` (destination -> staging
    path), where the first process bind-mounted them while still root, so the sandbox uid
    needs no search permission on the host directories above them."""
    args = [
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--disable-userns", "--die-with-parent", "--new-session",
        "--uid", str(spec.uid), "--gid", str(spec.gid), "--hostname", spec.hostname,
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
    ]
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    if spec.tmp_device is None:
        args += ["--size", str(spec.tmp_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
    for dest, staging in staged.items():
        args += ["--bind" if dest == "/tmp" else "--ro-bind", staging, dest]
    args += [
        "--dir", "/opt",
        "--proc", "/proc", "--dev", "/dev",
        "--remount-ro", "/",
        "--chdir", "/var/task", "--clearenv",
    ]
    for key, value in spec.env.items():
        args += ["--setenv", key, value]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args


def _mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None) -> None:
    if libc.mount(source, target, fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target!r}: {os.strerror(err)}")


def _stage_binds(plan: list[tuple[bytes, bytes]], tmp: tuple[bytes, bytes] | None) -> None:
    """In a private mount namespace of the (still root) first process, bind each source at
    a staging path under a fresh tmpfs, where the sandbox uid can reach it, and mount the
    environment's own /tmp filesystem (a loop device) there too."""
    unshare(CLONE_NEWNS)
    _mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None)
    _mount(b"lamina", STAGING.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=64k")
    for src, staging in plan:
        os.mkdir(staging, 0o755)
        _mount(src, staging, None, _MS_BIND | _MS_REC, None)
    if tmp is not None:
        device, staging = tmp
        os.mkdir(staging, 0o755)
        _mount(device, staging, b"ext4", _MS_NOSUID | _MS_NODEV, None)
        with contextlib.suppress(OSError):
            os.rmdir(staging + b"/lost+found")


def _pipe_with(data: bytes) -> int:
    """A pipe whose read end yields `data` then EOF (for bwrap's --args/--seccomp)."""
    r, w = os.pipe()
    try:
        written = 0
        while written < len(data):  # pipe buffers are 64 KiB; our payloads are far smaller
            written += os.write(w, data[written:])
    finally:
        os.close(w)
    return r


def spawn(spec: SandboxSpec, cgroups: CgroupSet, netns_fd: int) -> SandboxProcess:
    """Start the sandbox. Blocking (fork + exec, a few ms): call it off the event loop."""
    bwrap = bwrap_path()
    binds = [(str(spec.code_dir), "/var/task")]
    if spec.runtime_dir is not None:
        binds.append((str(spec.runtime_dir), "/var/runtime"))
    binds.extend(spec.extra_ro_binds)
    staged = {dest: f"{STAGING}/{i}" for i, (_src, dest) in enumerate(binds)}
    stage_plan = [(src.encode(), staged[dest].encode()) for src, dest in binds]
    tmp_plan: tuple[bytes, bytes] | None = None
    if spec.tmp_device is not None:
        staged["/tmp"] = f"{STAGING}/tmp"
        tmp_plan = (spec.tmp_device.encode(), staged["/tmp"].encode())
    seccomp_fd = _pipe_with(SECCOMP_FILTER) if SECCOMP_FILTER else None
    args_blob = b"".join(a.encode() + b"\0" for a in bwrap_args(spec, seccomp_fd, staged))
    args_fd = _pipe_with(args_blob)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    procs_files = cgroups.procs_files
    uid, gid = spec.uid, spec.gid

    def enter() -> None:  # runs in the child between fork and exec
        setns(netns_fd, CLONE_NEWNET)
        _stage_binds(stage_plan, tmp_plan)
        me = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        # Changing uid away from root clears "dumpable", which makes /proc/self/fd (where
        # bwrap finds the bind fds) unreadable to the process itself; set it back.
        libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)

    pass_fds = [args_fd] + ([seccomp_fd] if seccomp_fd is not None else [])
    try:
        popen = subprocess.Popen(
            [bwrap, "--args", str(args_fd), "--", *spec.argv],
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
            pass_fds=pass_fds, preexec_fn=enter, close_fds=True, env={},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(out_r)
        raise SandboxError(f"could not start the sandbox: {exc}") from exc
    finally:
        os.close(out_w)
        for fd in pass_fds:
            os.close(fd)
    os.set_blocking(out_r, False)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError as exc:
        popen.kill()
        popen.wait()
        os.close(out_r)
        raise SandboxError(f"pidfd_open failed: {exc}") from exc
    return SandboxProcess(popen=popen, pidfd=pidfd, output_fd=out_r, cgroups=cgroups)
