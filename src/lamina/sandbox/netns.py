"""Per-environment network namespaces with the Runtime API socket already listening inside.

Network namespaces are per thread: the calling thread enters a fresh namespace, brings
`lo` up, binds 127.0.0.1:9001 there and returns to its own namespace before returning.
The socket keeps the namespace alive; the environment joins it through the returned fd.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def setns(fd: int, nstype: int) -> None:
    _check(libc.setns(fd, nstype))


def unshare(flags: int) -> None:
    _check(libc.unshare(flags))


def _bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


@contextlib.contextmanager
def _inside_new_netns() -> Iterator[int]:
    """Move the calling thread into a fresh network namespace for the block (yielding its
    fd, which the caller then owns) and back out afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare(CLONE_NEWNET)
        try:
            yield os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


def new_netns() -> int:
    """A fresh network namespace (only a loopback device, down): its fd."""
    with _inside_new_netns() as ns_fd:
        return ns_fd


def new_netns_listener(port: int = 9001) -> tuple[int, socket.socket]:
    """Create a network namespace with a non-blocking listener on 127.0.0.1:`port` inside.

    Returns (namespace fd, listening socket). The caller owns both and closes the fd
    once the environment has joined the namespace.
    """
    with _inside_new_netns() as ns_fd:
        try:
            _bring_up_loopback()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            os.close(ns_fd)
            raise
    return ns_fd, sock
