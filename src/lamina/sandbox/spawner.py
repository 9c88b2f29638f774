"""The spawner: a small helper process that starts sandboxes on the server's behalf.

Forking the server itself is slow: the kernel copies the page tables of every mapping
and, while the child runs the set-up below, each page either side touches is copied
(~6 ms of CPU at 60 MB of server memory, growing with it). The spawner is a separate,
single-threaded Python process that imports next to nothing. For each request it
`clone`s itself with CLONE_PARENT, so the new process is the *server's* child (the
server waits for it, reads its exit status and gets its SIGCHLD) while only the
spawner's few megabytes are copied. The child joins the environment's network
namespace, stages its bind mounts in a private mount namespace, enters its cgroups,
drops to the sandbox uid, lowers its open-file limit to Lambda's and execs bubblewrap.

Protocol, over a SOCK_SEQPACKET socket: the server sends one message per sandbox, a
marshalled `Request` tuple with five descriptors (network namespace, output pipe,
bwrap's --args pipe, its --seccomp pipe or any stand-in when there is no filter, an error
pipe) and any extra ones for the sandboxed program, which finds them from fd 6 on. The spawner
answers with the marshalled pid (an int) or an error string. The child writes to the
error pipe only when it fails before exec; the pipe is close-on-exec, so EOF without
data means bubblewrap is running.

This module imports only the standard library and `lamina.sandbox.netns`, and runs as
`python -I -S` so that it stays small.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import marshal
import os
import platform
import resource
import signal
import socket
import sys

from lamina.sandbox.netns import CLONE_NEWNET, libc, setns, unshare

# The descriptors bwrap finds in the child: its --args and --seccomp pipes.
ARGS_FD = 3
SECCOMP_FD = 4
_ERR_FD = 5
_FDS_PER_REQUEST = 5  # and any extra ones, which the child finds from fd 6 on
_MAX_MESSAGE = 1 << 20

CLONE_NEWNS = 0x00020000
_CLONE_PARENT = 0x00008000
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
# Where function trees are staged for bwrap inside the child's own mount namespace.
STAGING = "/run"
# Open files per process in an environment, soft and hard, as AWS documents for Lambda's
# execution environment (its 1,024 processes and threads are the pids cgroup's limit).
NOFILE = 1024

# (stage plan [(source, staging path)], tmp plan (device, staging path) or None,
#  cgroup.procs files, uid, gid, argv to exec)
Request = tuple[list[tuple[bytes, bytes]], tuple[bytes, bytes] | None, list[bytes], int, int, list[bytes]]

# The calls below must not release the GIL: after a raw clone the child is this thread only.
_pylibc = ctypes.PyDLL(None, use_errno=True)


def _mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None) -> None:
    if libc.mount(source, target, fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target!r}: {os.strerror(err)}")


def _stage_binds(plan: list[tuple[bytes, bytes]], tmp: tuple[bytes, bytes] | None) -> None:
    """In a private mount namespace of the (still root) child, bind each source at a
    staging path under a fresh tmpfs, where the sandbox uid can reach it, and mount the
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


def _clone_parent() -> int:
    """fork(), except that the child's parent is our parent. Returns 0 in the child."""
    number = _SYS_CLONE.get(platform.machine())
    if number is None:
        raise OSError(f"no clone system call known for {platform.machine()}")
    pid: int = _pylibc.syscall(number, _CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def _become_sandbox(request: Request, fds: list[int]) -> None:
    """In the child: set up, then exec bubblewrap. Never returns."""
    stage_plan, tmp_plan, procs_files, uid, gid, argv = request
    try:
        netns, out, args, seccomp, err, *extra = (fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in fds)  # clear of 0..9
        os.dup2(err, _ERR_FD, inheritable=False)
        setns(netns, CLONE_NEWNET)
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
        # bwrap finds its descriptors) unreadable to the process itself; set it back.
        libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
        null = fcntl.fcntl(os.open(os.devnull, os.O_RDONLY), fcntl.F_DUPFD, 16)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(args, ARGS_FD)
        os.dup2(seccomp, SECCOMP_FD)
        for number, fd in enumerate(extra, _ERR_FD + 1):
            os.dup2(fd, number)
        os.closerange(_ERR_FD + 1 + len(extra), os.sysconf("SC_OPEN_MAX"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        os.execve(argv[0], argv, {})
    except BaseException as exc:  # reported to the server, then exit
        with contextlib.suppress(BaseException):
            os.write(_ERR_FD, f"{type(exc).__name__}: {exc}".encode())
    finally:
        os._exit(127)


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an SCM_RIGHTS message carried (from socket.recvmsg's ancdata)."""
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return list(fds)


def _serve(sock: socket.socket) -> None:
    fd_bytes = array.array("i").itemsize * (_FDS_PER_REQUEST + 4)
    while True:
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(fd_bytes))
        except InterruptedError:
            continue
        if not data:
            return  # the server went away
        received = received_fds(ancdata)
        try:
            request: Request = marshal.loads(data)
            if len(received) < _FDS_PER_REQUEST:
                raise OSError(f"expected {_FDS_PER_REQUEST} descriptors, got {len(received)}")
            pid = _clone_parent()
            if pid == 0:
                _become_sandbox(request, received)
            reply: int | str = pid
        except Exception as exc:  # the server turns it into a SandboxError
            reply = f"{type(exc).__name__}: {exc}"
        finally:
            for fd in received:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sock.send(marshal.dumps(reply))


def main() -> None:
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # Python ignores SIGPIPE; what the sandbox execs must start with the defaults.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    sock = socket.socket(fileno=int(sys.argv[1]))
    if os.getppid() == 1:  # the server died before the death signal was armed
        return
    _serve(sock)


if __name__ == "__main__":
    main()
