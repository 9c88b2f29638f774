import ctypes
import platform
import struct
import tempfile

import pytest

from lamina.sandbox.seccomp import _ARCHES, build_filter


def _program(machine: str, allow: frozenset[str] = frozenset()) -> list[tuple[int, int, int, int]]:
    blob = build_filter(machine, allow)
    assert blob is not None and len(blob) % 8 == 0
    return [struct.unpack("HBBI", blob[i:i + 8]) for i in range(0, len(blob), 8)]


def _run(program: list[tuple[int, int, int, int]], arch: int, nr: int) -> int:
    """A tiny interpreter for the instructions the filter uses."""
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:
            acc = arch if k == 4 else nr
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


def test_x86_64_filter_denies_mount_and_allows_read() -> None:
    prog = _program("x86_64")
    allow, eperm = 0x7FFF0000, 0x00050001
    arch = 0xC000003E
    assert _run(prog, arch, 0) == allow          # read
    assert _run(prog, arch, 165) == eperm        # mount
    assert _run(prog, arch, 272) == eperm        # unshare
    assert _run(prog, arch, 101) == eperm        # ptrace
    assert _run(prog, arch, 0x40000000 | 2) == eperm  # x32 ABI
    assert _run(prog, 0x40000003, 0) == eperm    # i386 ABI


def test_unknown_machine_has_no_filter() -> None:
    assert build_filter("sparc") is None


def test_zygote_filter_lets_only_the_named_calls_through() -> None:
    prog = _program("x86_64", frozenset({"unshare", "mount", "move_mount"}))
    allow, eperm = 0x7FFF0000, 0x00050001
    arch = 0xC000003E
    assert _run(prog, arch, 165) == allow        # mount
    assert _run(prog, arch, 272) == allow        # unshare
    assert _run(prog, arch, 429) == allow        # move_mount
    assert _run(prog, arch, 166) == eperm        # umount2 still refused
    assert _run(prog, arch, 101) == eperm        # ptrace still refused
    assert _run(prog, arch, 308) == eperm        # setns still refused


# -- cross-checked against libseccomp ---------------------------------------------------------
# The filter is written by hand (see the module's docstring); libseccomp (libseccomp2, in
# Debian's base system) keeps the syscall tables and builds filters for a living, so the
# tables and the programs are checked against it where it is installed.

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_EPERM = 0x00050000 | 1
_SCMP_FLTATR_ACT_BADARCH = 2
_NATIVE = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("libseccomp2 is not installed")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    for name in ("seccomp_arch_add", "seccomp_arch_remove"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    return lib


def _libseccomp_program(lib: ctypes.CDLL, arch: int, names: list[str]) -> list[tuple[int, int, int, int]]:
    """libseccomp's filter of the same policy: allow all but `names` (EPERM), other ABIs EPERM."""
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    try:
        native = _NATIVE[platform.machine()]
        if arch != native:
            assert lib.seccomp_arch_add(ctx, arch) == 0 and lib.seccomp_arch_remove(ctx, native) == 0
        assert lib.seccomp_attr_set(ctx, _SCMP_FLTATR_ACT_BADARCH, _SCMP_ACT_EPERM) == 0
        for name in names:
            assert lib.seccomp_rule_add(ctx, _SCMP_ACT_EPERM, lib.seccomp_syscall_resolve_name(name.encode()), 0) == 0
        with tempfile.TemporaryFile() as out:
            assert lib.seccomp_export_bpf(ctx, out.fileno()) == 0
            out.seek(0)
            blob = out.read()
    finally:
        lib.seccomp_release(ctx)
    return [struct.unpack("HBBI", blob[i:i + 8]) for i in range(0, len(blob), 8)]


@pytest.mark.parametrize("machine", sorted(_ARCHES))
def test_the_tables_match_libseccomps(machine: str) -> None:
    lib = _libseccomp()
    arch, table = _ARCHES[machine]
    for name, number in table.items():
        assert lib.seccomp_syscall_resolve_name_arch(arch, name.encode()) == number, name


@pytest.mark.parametrize("machine", sorted(_ARCHES))
def test_the_filter_decides_as_libseccomps_does(machine: str) -> None:
    if platform.machine() not in _NATIVE:
        pytest.skip("no native table to translate the rules from")
    lib = _libseccomp()
    arch, table = _ARCHES[machine]
    ours, theirs = _program(machine), _libseccomp_program(lib, arch, sorted(table))
    # every number but -1, which libseccomp lets through on x86_64 (the kernel answers ENOSYS:
    # it is how a tracer skips a call) and ours refuses with EPERM: the same nothing either way
    numbers = [*range(600), *(0x40000000 | nr for nr in range(600))]
    for other_arch in (arch, 0x40000003, 0xC000003E ^ arch ^ 0xC00000B7):
        for nr in numbers:
            assert _run(ours, other_arch, nr) == _run(theirs, other_arch, nr), (hex(other_arch), nr)
