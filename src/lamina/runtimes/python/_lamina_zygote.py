"""Lamina's Python zygote: a started interpreter that forks execution environments.

Starting Python costs more CPU than everything else in a new environment. For functions
that scale out, the server starts one zygote per function configuration: a sandbox like
any environment's, running this module with Lamina's runtime imported but *not* the
function's handler, so that each environment still runs the function's own init. For
each new environment the server sends a request on the control socket (fd 6) and the
zygote forks a child that:

1. says hello on the environment's socket (the kernel adds the child's pid, as the
   server's pid namespace sees it) and waits while the server moves it into the
   environment's cgroups;
2. enters a user namespace of its own (the same uid and gid mapped) with its own network,
   mount, IPC, UTS and cgroup namespaces, brings up `lo`, listens on 127.0.0.1:9001 and passes
   the listening socket to the server;
3. creates its pid namespace: an init (pid 1) that reaps orphans and exits with the
   runtime's status, and the runtime (pid 2); mounts a fresh /proc, the environment's own
   /tmp (the detached ext4 mount the server passed, or a tmpfs), /dev/shm and /dev/pts, and
   makes the /dev it shares with the zygote read-only;
4. locks itself down before any function code runs: no more user namespaces, an empty
   capability bounding set, no_new_privs, the environments' seccomp filter, no
   capabilities; then takes the environment's variables and runs the runtime.

The first child stays outside the new pid namespace and reports the init's exit status
on the environment's socket, as bubblewrap's exit status reports it for other
environments. Only the standard library is used; the zygote never imports function code
(its module search path leaves out /var/task and /opt while it imports).
"""

from __future__ import annotations

import array
import ctypes
import gc
import marshal
import os
import signal
import socket
import struct
import sys

CONTROL_FD = 6
_CLONE_NEWNS, _CLONE_NEWCGROUP, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000
_ST_KEPT = 0x2 | 0x4 | 0x8 | 0x400 | 0x800 | 0x1000  # statvfs nosuid, nodev, noexec, *atime = MS_*
_SYS_MOVE_MOUNT, _MOVE_MOUNT_F_EMPTY_PATH, _AT_FDCWD = 429, 0x4, -100
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 1, 24, 38, 22
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, _SECCOMP_MODE_FILTER = 47, 4, 2
_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_RUNTIME_MODULES: frozenset[str] = frozenset()  # what a freshly started runtime has imported


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:  # the sandbox has the standard library only, not lamina
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _own_namespaces() -> socket.socket:
    """Step 1: new namespaces, the Runtime API's listening socket inside them."""
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS | _CLONE_NEWCGROUP
    _check(_libc.unshare(flags), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        up = struct.unpack("16sH14x", _ioctl(s.fileno(), _SIOCGIFFLAGS, ifreq))[1] | _IFF_UP
        _ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", up))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 9001))
    listener.listen(64)
    return listener


def _ioctl(fd: int, request: int, arg: bytes) -> bytes:
    import fcntl  # imported by the zygote before it forks: free here

    return fcntl.ioctl(fd, request, arg)


def _mount_tmp(tmp_fd: int, tmp_mb: int) -> None:
    if tmp_fd >= 0:
        _check(_libc.syscall(_SYS_MOVE_MOUNT, tmp_fd, b"", _AT_FDCWD, b"/tmp", _MOVE_MOUNT_F_EMPTY_PATH),
               "move_mount /tmp")
    else:
        _check(_libc.mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV,
                           f"size={tmp_mb}m,mode=1777".encode()), "mount /tmp")


def _private_dev() -> None:
    """/dev comes from the zygote's sandbox, shared by every environment it forks: give this
    one its own /dev/shm and pseudo-terminals, and make the rest read-only."""
    _check(_libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=1777"), "mount /dev/shm")
    _check(_libc.mount(b"devpts", b"/dev/pts", b"devpts", _MS_NOSUID | _MS_NOEXEC,
                       b"newinstance,ptmxmode=0666,mode=0620"), "mount /dev/pts")
    kept = os.statvfs("/dev").f_flag & _ST_KEPT  # flags the remount must repeat (they are locked)
    _check(_libc.mount(None, b"/dev", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | kept, None), "remount /dev")


def _lock_down(seccomp_filter: bytes) -> None:
    """Step 4: nothing the environment runs can regain what the zygote could do."""
    _write("/proc/sys/user/max_user_namespaces", "0")
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if seccomp_filter:
        program = ctypes.create_string_buffer(seccomp_filter, len(seccomp_filter))
        fprog = _SockFprog(len(seccomp_filter) // 8, ctypes.addressof(program))
        _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
    header = struct.pack("Ii", _CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(header, bytes(24)), "capset")


def _init(runtime_pid: int) -> None:
    """Pid 1 of the environment: reap everything, exit as the runtime exits."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == runtime_pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _environment(message: bytes, env_fd: int, out_fd: int, tmp_fd: int) -> None:
    """The forked child (steps 1 to 4). Never returns."""
    try:
        # Step 1 comes before anything else: until the server has moved this process into
        # the environment's cgroups, every page it copies from the zygote (and the kernel
        # memory of the namespaces it makes) would be charged to the zygote.
        os.write(env_fd, b"pid")
        if os.read(env_fd, 16) != b"go":
            os._exit(1)
        os.close(CONTROL_FD)
        request = marshal.loads(message)
        env_sock = socket.socket(fileno=env_fd)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        listener = _own_namespaces()
        env_sock.sendmsg([b"ready"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
        listener.close()
        _check(_libc.unshare(_CLONE_NEWPID), "unshare pid namespace")
        init = os.fork()
        if init:  # outside the new pid namespace: report the environment's exit status
            os.close(out_fd)
            if tmp_fd >= 0:
                os.close(tmp_fd)
            _, status = os.waitpid(init, 0)
            env_sock.send(b"exit %d" % os.waitstatus_to_exitcode(status))
            os._exit(0)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        env_sock.close()
        _check(_libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount /proc")
        _mount_tmp(tmp_fd, request["tmp_mb"])
        _private_dev()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the zygote's control socket too
        _lock_down(request["seccomp"])
        runtime = os.fork()
        if runtime:
            _init(runtime)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir("/var/task")
        for name in [name for name in sys.modules if name not in _RUNTIME_MODULES]:
            del sys.modules[name]  # a function may ship its own module of that name, as elsewhere
        gc.enable()
    except BaseException as exc:  # before the runtime: say why on the environment's output
        for fd in (out_fd, 2):
            try:
                os.write(fd, f"Lamina: environment set-up failed: {exc}\n".encode())
                break
            except OSError:
                continue
        os._exit(70)
    import _lamina_runtime

    try:
        _lamina_runtime.main()
    finally:
        _lamina_runtime._flush()
    os._exit(0)


def _reap(_signum: int, _frame: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(control: socket.socket) -> None:
    fd_space = socket.CMSG_SPACE(3 * array.array("i").itemsize)
    control.send(b"ready")
    while True:
        message, ancdata, _flags, _addr = control.recvmsg(1 << 20, fd_space)
        if not message:
            return
        fds = array.array("i")
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        received = list(fds)
        if len(received) >= 2:
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                _environment(message, received[0], received[1], received[2] if len(received) > 2 else -1)
        for fd in received:
            os.close(fd)


def main(runtime_modules: frozenset[str]) -> None:
    """Run by `/var/runtime/zygote.py`, which has taken /var/task and /opt off the module
    search path and imported the runtime (`runtime_modules`: what was loaded then)."""
    global _RUNTIME_MODULES
    _RUNTIME_MODULES = runtime_modules
    import fcntl  # noqa: F401 - for the children

    signal.signal(signal.SIGCHLD, _reap)
    # what the children share with the zygote stays shared: no collection walks (and so
    # copies) the zygote's objects; environments collect as usual
    gc.disable()
    gc.freeze()
    serve(socket.socket(fileno=CONTROL_FD))
