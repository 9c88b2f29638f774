"""Linux execution environments: bubblewrap namespaces + Lamina's own cgroups.

`spawn` starts one sandboxed process tree through the spawner (`lamina.sandbox.spawner`),
a small helper process whose children are the server's children. The first process joins
the environment's network namespace (where the Runtime API already listens), enters the
environment's cgroups and drops to the unprivileged sandbox uid *before* exec'ing
bubblewrap, so nothing inside maps to host root. bubblewrap then builds the
mount/pid/ipc/uts/user namespaces, installs the seccomp filter (with no_new_privs) and
execs the runtime. Options (which carry environment variables) go over a pipe, never on
a command line.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import marshal
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lamina.errors import SandboxError
from lamina.sandbox import spawner
from lamina.sandbox.cgroups import CgroupSet
from lamina.sandbox.seccomp import build_filter

# Host files a runtime needs besides /usr (dynamic loader cache, time zones, TLS roots,
# user database). Nothing secret: /etc/shadow and friends are never bound.
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/hosts", "/etc/passwd", "/etc/group", "/etc/ssl",
    "/etc/ca-certificates", "/etc/alternatives", "/etc/mime.types",
)

SECCOMP_FILTER = build_filter()
# A zygote creates and mounts the namespaces of the environments it forks; they install
# SECCOMP_FILTER themselves before anything else runs.
ZYGOTE_SECCOMP_FILTER = build_filter(allow=frozenset({"unshare", "mount", "move_mount"}))
STAGING = spawner.STAGING


@dataclass(frozen=True)
class SandboxSpec:
    """What one environment runs and sees."""

    code_dir: Path                   # bound read-only at /var/task
    argv: Sequence[str]              # the runtime command, as seen inside
    env: dict[str, str]
    tmp_mb: int
    runtime_dir: Path | None = None  # bound read-only at /var/runtime
    root: Path | None = None         # a runtime image bound read-only at / (None: the host's /usr)
    extra_ro_binds: tuple[tuple[str, str], ...] = ()
    tmp_device: str | None = None    # an ext4 block device mounted at /tmp; None: a tmpfs of tmp_mb
    uid: int = 65534
    gid: int = 65534
    hostname: str = "localhost"
    zygote: bool = False             # may create user namespaces and mount (see ZYGOTE_SECCOMP_FILTER)


class Process(Protocol):
    """What the server needs of an environment's first process."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float) -> int: ...
    def kill(self) -> None: ...


class Child:
    """A process the server is the parent of, though the spawner started it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) once it has exited, else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the status is gone
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the exit; TimeoutError if it has not exited."""
        code = self.poll()
        if code is None:
            pidfd = os.pidfd_open(self.pid)
            try:
                select.select([pidfd], [], [], timeout)
            finally:
                os.close(pidfd)
            code = self.poll()
        if code is None:
            raise TimeoutError(f"process {self.pid} still running after {timeout} s")
        return code

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


@dataclass
class SandboxProcess:
    """A running sandbox: bwrap's pid (and pidfd), the read end of its output pipe."""

    child: Process
    pidfd: int
    output_fd: int
    cgroups: CgroupSet

    @property
    def pid(self) -> int:
        return self.child.pid

    def close_fds(self) -> None:
        for fd in (self.pidfd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfd = self.output_fd = -1

    def read_output(self, loop: asyncio.AbstractEventLoop) -> bytes:
        """What the sandbox wrote since the last read, b"" if nothing; at EOF `loop` stops
        watching the output (for a reader added with loop.add_reader)."""
        if self.output_fd < 0:
            return b""
        try:
            data = os.read(self.output_fd, 65536)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(self.output_fd)
        return data

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop watching and close the descriptors, on the loop's thread, so that no read can
        meet a descriptor number that a thread has closed and the kernel has reused."""
        for fd in (self.output_fd, self.pidfd):
            if fd >= 0:
                loop.remove_reader(fd)
        self.close_fds()

    def reap(self) -> None:
        """Wait (blocking, up to 5 s) for the first process to end, else kill it."""
        try:
            self.child.wait(timeout=5)
        except (TimeoutError, OSError):  # still running, or its status is gone: make sure it ends
            self.child.kill()


class _Spawner:
    """The server's end of the spawner process, started on first use and again if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        src = str(Path(spawner.__file__).resolve().parents[2])
        code = f"import sys; sys.path[:0] = [{src!r}]; from lamina.sandbox.spawner import main; main()"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", code, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()], close_fds=True)
        finally:
            theirs.close()
        self._sock = ours

    def request(self, request: spawner.Request, fds: list[int]) -> int:
        """Send one request with its descriptors; return the new process's pid."""
        message = marshal.dumps(request)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        with self._lock:
            problem = "the spawner exited"
            for attempt in (1, 2):
                if self._sock is None or attempt == 2 or not self._alive():
                    self._restart()
                assert self._sock is not None
                try:
                    self._sock.sendmsg([message], rights)
                    reply = self._sock.recv(4096)
                except OSError as exc:
                    problem = f"the spawner is not answering: {exc}"
                    continue
                if reply:
                    break
            else:
                raise SandboxError(problem)
        answer = marshal.loads(reply)
        if isinstance(answer, str):
            raise SandboxError(f"could not start the sandbox: {answer}")
        pid: int = answer
        return pid

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _restart(self) -> None:
        if self._sock is not None:
            self._sock.close()
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._start()


_SPAWNER = _Spawner()


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
        *(() if spec.zygote else ("--disable-userns",)), "--die-with-parent", "--new-session",
        "--uid", str(spec.uid), "--gid", str(spec.gid), "--hostname", spec.hostname,
    ]
    if "/" in staged:  # an image: its own /usr, /etc, /var/lang; its mount points exist
        args += ["--ro-bind", staged["/"], "/"]
    else:
        args += ["--ro-bind", "/usr", "/usr",
                 "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                 "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin"]
        for path in ETC_FILES:
            args += ["--ro-bind-try", path, path]
    if spec.tmp_device is None:
        args += ["--size", str(spec.tmp_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
    for dest, staging in staged.items():
        if dest != "/":
            args += ["--bind" if dest == "/tmp" else "--ro-bind", staging, dest]
    args += [
        *(() if "/" in staged else ("--dir", "/opt")),
        "--proc", "/proc", "--dev", "/dev",
        "--remount-ro", "/",
        "--chdir", "/var/task", "--clearenv",
    ]
    for key, value in spec.env.items():
        args += ["--setenv", key, value]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args


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


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def spawn(spec: SandboxSpec, cgroups: CgroupSet, netns_fd: int, extra_fds: Sequence[int] = ()) -> SandboxProcess:
    """Start the sandbox. Blocking (a few ms until bubblewrap is exec'd): call it off the
    event loop. The sandboxed program finds `extra_fds` from fd 6 on."""
    bwrap = bwrap_path()
    binds = [(str(spec.root), "/")] if spec.root is not None else []
    binds.append((str(spec.code_dir), "/var/task"))
    if spec.runtime_dir is not None:
        binds.append((str(spec.runtime_dir), "/var/runtime"))
    binds.extend(spec.extra_ro_binds)
    staged = {dest: f"{STAGING}/{i}" for i, (_src, dest) in enumerate(binds)}
    stage_plan = [(src.encode(), staged[dest].encode()) for src, dest in binds]
    tmp_plan: tuple[bytes, bytes] | None = None
    if spec.tmp_device is not None:
        staged["/tmp"] = f"{STAGING}/tmp"
        tmp_plan = (spec.tmp_device.encode(), staged["/tmp"].encode())
    seccomp_filter = ZYGOTE_SECCOMP_FILTER if spec.zygote else SECCOMP_FILTER
    seccomp = bool(seccomp_filter)
    args_blob = b"".join(a.encode() + b"\0"
                         for a in bwrap_args(spec, spawner.SECCOMP_FD if seccomp else None, staged))
    argv = [bwrap.encode(), b"--args", str(spawner.ARGS_FD).encode(), b"--",
            *(a.encode() for a in spec.argv)]
    request: spawner.Request = (stage_plan, tmp_plan, [p.encode() for p in cgroups.procs_files],
                                spec.uid, spec.gid, argv)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    passed = [out_w, _pipe_with(args_blob), _pipe_with(seccomp_filter or b""), err_w]
    try:
        pid = _SPAWNER.request(request, [netns_fd, *passed, *extra_fds])
    except SandboxError:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in passed:
            os.close(fd)
    child = Child(pid)
    try:
        failure = _read_all(err_r)  # EOF once bubblewrap is exec'd
    finally:
        os.close(err_r)
    if failure:
        child.kill()
        child.wait(5)
        os.close(out_r)
        raise SandboxError(f"could not start the sandbox: {failure.decode(errors='replace')}")
    os.set_blocking(out_r, False)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:
        child.kill()
        child.wait(5)
        os.close(out_r)
        raise SandboxError(f"pidfd_open failed: {exc}") from exc
    return SandboxProcess(child=child, pidfd=pidfd, output_fd=out_r, cgroups=cgroups)
