"""Zygotes: a started runtime per function configuration that forks new environments.

A new environment normally pays for bubblewrap and a whole interpreter start-up, which
on two cores caps how fast a function scales out. A zygote is a sandbox like an
environment's (same code, layers, variables, uid; its own cgroups and an empty network
namespace) whose runtime has imported Lamina's runtime but not the function, and waits
on a control socket. `fork` asks it for one environment: the child is first moved into
the environment's cgroups, then makes its own user, network, mount, IPC, UTS, cgroup and
pid namespaces, hands the server its Runtime API socket, mounts its own /proc, /tmp,
/dev/shm and /dev/pts, locks itself down (seccomp, no_new_privs, no capabilities, no user
namespaces) and only then runs the function's init. The inside is `lamina/runtimes/python/_lamina_zygote.py`.

The zygote keeps the right to create user namespaces and to mount, which ordinary
environments lose; it never runs function code. Pages the children share with it stay
charged to the zygote's memory cgroup. The environments live in pid namespaces nested in
the zygote's, so they end when it ends: a zygote is stopped only once `live` is 0.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import enum
import logging
import marshal
import os
import select
import signal
import socket
import struct
import time
import uuid
from collections.abc import Callable

from lamina.domain.lifecycle import Lifecycle
from lamina.errors import SandboxError
from lamina.sandbox.cgroups import CgroupLimits, CgroupSet
from lamina.sandbox.linux import SECCOMP_FILTER, SandboxProcess, SandboxSpec, spawn
from lamina.sandbox.netns import new_netns
from lamina.sandbox.spawner import received_fds

log = logging.getLogger("lamina.sandbox")

READY_TIMEOUT_SECONDS = 10.0
FORK_TIMEOUT_SECONDS = 5.0
_UCRED = struct.Struct("iII")


class ZygoteState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    DEAD = "dead"


LIFECYCLE = Lifecycle[ZygoteState]("zygote", {
    ZygoteState.STARTING: frozenset({ZygoteState.READY, ZygoteState.DEAD}),
    ZygoteState.READY: frozenset({ZygoteState.DEAD}),
    ZygoteState.DEAD: frozenset(),
})


class ForkedChild:
    """An environment's first process, forked by a zygote: not the server's child, so its
    exit status comes over the environment's socket (none: it was killed)."""

    def __init__(self, pid: int, pidfd: int, sock: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._sock = sock
        sock.setblocking(False)

    @property
    def pidfd(self) -> int:
        return self._pidfd

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                message = self._sock.recv(64)
            except BlockingIOError:
                return None
            except OSError:
                message = b""
            self.returncode = int(message.split()[1]) if message.startswith(b"exit ") else -signal.SIGKILL
            self.close()
        return self.returncode

    def wait(self, timeout: float) -> int:
        if self.poll() is None:
            select.select([self._sock], [], [], timeout)
        code = self.poll()
        if code is None:
            raise TimeoutError(f"process {self.pid} still running after {timeout} s")
        return code

    def kill(self) -> None:
        if self.returncode is None and self._pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        self._sock.close()


class Zygote:
    """One zygote process: STARTING → READY → DEAD (or STARTING → DEAD), nothing else.
    `destroy` is idempotent; `off_loop` runs its blocking clean-up (supervised)."""

    def __init__(self, *, spec: SandboxSpec, limits: CgroupLimits, cgroup_base: str, generation: int,
                 off_loop: Callable[[Callable[[], None], str], None]) -> None:
        self.spec = spec
        self.generation = generation
        self.state = ZygoteState.STARTING
        self._off_loop = off_loop
        self.last_used = time.monotonic()
        self.live = 0  # environments forked and not yet ended (their owners count them)
        self._limits = limits
        self._cgroups = CgroupSet(cgroup_base, f"zygote-{uuid.uuid4().hex}")
        self._control: socket.socket | None = None
        self._proc: SandboxProcess | None = None
        self._loop = asyncio.get_running_loop()

    async def start(self) -> bool:
        """Start the zygote and wait until it is ready to fork. False when it could not."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ns_fd = await self._loop.run_in_executor(None, self._prepare)
            try:
                self._proc = await self._loop.run_in_executor(
                    None, spawn, self.spec, self._cgroups, ns_fd, [theirs.fileno()])
            finally:
                os.close(ns_fd)
                theirs.close()
            self._loop.add_reader(self._proc.output_fd, self._read_output)
            self._loop.add_reader(self._proc.pidfd, self.destroy)
            ours.setblocking(False)
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                ready = await self._loop.sock_recv(ours, 16)
            if ready != b"ready":
                raise SandboxError("the zygote exited before it was ready")
        except (OSError, SandboxError, TimeoutError) as exc:
            log.warning("a zygote for %s could not start: %s", self.spec.env.get("AWS_LAMBDA_FUNCTION_NAME"), exc)
            ours.close()
            self.destroy()
            return False
        ours.setblocking(True)
        if self.state is ZygoteState.DEAD:  # destroyed while it started (its owner retired it)
            ours.close()
            return False
        self._control = ours
        self.state = LIFECYCLE.check(self.state, ZygoteState.READY, subject=self._cgroups.name)
        return True

    def _prepare(self) -> int:
        self._cgroups.create(self._limits)
        return new_netns()

    def fork(self, env: dict[str, str], output_fd: int, tmp_mount_fd: int | None, tmp_mb: int,
             cgroups: CgroupSet) -> tuple[ForkedChild, socket.socket]:
        """Fork one environment into `cgroups` (blocking, a few ms: call it off the event
        loop). Returns its first process and its Runtime API's listening socket."""
        control = self._control
        if control is None or self.state is not ZygoteState.READY:
            raise SandboxError("the zygote is not running")
        self.last_used = time.monotonic()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            mine.settimeout(FORK_TIMEOUT_SECONDS)
            request = marshal.dumps({"env": env, "tmp_mb": tmp_mb, "seccomp": SECCOMP_FILTER or b""})
            fds = [theirs.fileno(), output_fd, *([] if tmp_mount_fd is None else [tmp_mount_fd])]
            try:
                control.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            finally:
                theirs.close()
            pid = self._child_pid(mine)
            pidfd = os.pidfd_open(pid)  # while it waits for "go": it cannot have exited
            try:
                cgroups.attach(pid)
                mine.send(b"go")
                message, ancdata, _flags, _addr = mine.recvmsg(
                    16, socket.CMSG_SPACE(array.array("i").itemsize) + socket.CMSG_SPACE(_UCRED.size))
                received = received_fds(ancdata)
                if message != b"ready" or len(received) != 1:
                    for fd in received:
                        os.close(fd)
                    raise SandboxError("the zygote's child could not make its namespaces (see the environment's log)")
            except BaseException:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.close(pidfd)
                raise
        except BaseException:
            mine.close()
            raise
        listener = socket.socket(fileno=received[0])
        listener.setblocking(False)
        return ForkedChild(pid, pidfd, mine), listener

    @staticmethod
    def _child_pid(sock: socket.socket) -> int:
        """The pid of the child that said hello on `sock` (SO_PASSCRED is set on it)."""
        message, ancdata, _flags, _addr = sock.recvmsg(16, socket.CMSG_SPACE(_UCRED.size))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and message == b"pid":
                pid: int = _UCRED.unpack(payload[:_UCRED.size])[0]
                return pid
        raise SandboxError("the zygote's child did not start (see the environment's log)")

    def _read_output(self) -> None:
        data = self._proc.read_output(self._loop) if self._proc is not None else b""
        if data:
            log.warning("zygote: %s", data.decode(errors="replace").rstrip())

    def destroy(self) -> None:
        """Stop the zygote, and with it any environment it forked that is still running.
        Idempotent."""
        if self.state is ZygoteState.DEAD:
            return
        self.state = LIFECYCLE.check(self.state, ZygoteState.DEAD, subject=self._cgroups.name)
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            self._proc.detach(self._loop)
        try:
            self._cgroups.kill()
        finally:
            self._off_loop(self._reap, f"reap {self._cgroups.name}")

    def _reap(self) -> None:
        self._cgroups.destroy()
        if self._proc is not None:
            self._proc.reap()
