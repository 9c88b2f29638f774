"""A seccomp-bpf filter for execution environments, built once as raw `sock_filter` bytes.

It refuses (EPERM) the system calls a function never needs and that widen the kernel
attack surface: mounts, namespaces, module loading, tracing other processes, keyrings,
bpf, perf. Everything else is allowed; other ABIs (i386, x32) are refused whole.
bubblewrap installs it (`--seccomp FD`) right before it executes the runtime, after
no_new_privs is set; a zygote's children install it themselves (prctl) before function code.

Written by hand rather than with libseccomp, weighed on Debian 12 (2026-12): libseccomp's
own Python binding is not on PyPI, and Debian's `python3-seccomp` is built for Debian's
interpreter, which the project's venv does not see (no system site-packages); `pyseccomp`
(ctypes over libseccomp2, which Debian's base system has) installs from PyPI and can export
raw BPF for bwrap and the zygote, but has had no release since 2021, costs ~55 ms at start-up
(ctypes.util.find_library runs ldconfig), and for this policy emits the same program as the
46 instructions below (one more: it lets syscall -1 through to ENOSYS, this refuses it). The
tables cover the two architectures Lambda has; tests/unit/sandbox/test_seccomp.py checks
them, and the filter's every decision, against libseccomp where libseccomp2 is installed.
"""

from __future__ import annotations

import errno
import platform
import struct

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_X32_SYSCALL_BIT = 0x40000000

_ARCHES = {
    # machine: (AUDIT_ARCH_*, {syscall name: number})
    "x86_64": (0xC000003E, {
        "ptrace": 101, "syslog": 103, "pivot_root": 155, "acct": 163, "chroot": 161,
        "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
        "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
        "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
        "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
        "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
        "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
        "userfaultfd": 323, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    }),
    "aarch64": (0xC00000B7, {
        "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "acct": 89,
        "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
        "syslog": 116, "ptrace": 117, "reboot": 142, "sethostname": 161,
        "setdomainname": 162, "add_key": 217, "request_key": 218, "keyctl": 219,
        "swapon": 224, "swapoff": 225, "perf_event_open": 241, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "setns": 268, "process_vm_readv": 270,
        "process_vm_writev": 271, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
        "kexec_file_load": 294, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    }),
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None, allow: frozenset[str] = frozenset()) -> bytes | None:
    """The filter for this machine's architecture, or None where Lamina has no table.
    `allow` names calls to let through after all (a zygote needs to create namespaces
    and mount for the environments it forks, which then install the full filter)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        return None
    audit_arch, table = _ARCHES[machine]
    numbers = sorted({nr for name, nr in table.items() if name not in allow})
    n = len(numbers)
    deny_at = 4 + n + 1  # index of the "return EPERM" instruction
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),                      # 0: A = arch
        _insn(_JEQ_K, 0, deny_at - 2, audit_arch),      # 1: other ABIs are refused
        _insn(_LD_W_ABS, 0, 0, 0),                      # 2: A = syscall number
    ]
    x32 = _X32_SYSCALL_BIT if machine == "x86_64" else 0xFFFFFFFF
    prog.append(_insn(_JGE_K, deny_at - 4, 0, x32))     # 3: x32 ABI refused
    for i, nr in enumerate(numbers):
        prog.append(_insn(_JEQ_K, deny_at - (4 + i) - 1, 0, nr))
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    return b"".join(prog)
