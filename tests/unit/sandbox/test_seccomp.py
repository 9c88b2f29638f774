import struct

from lamina.sandbox.seccomp import build_filter


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
