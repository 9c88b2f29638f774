"""Function logs under the data dir: per function and region, capped, removed with the function.

A function's log is at most two segments, `<region>/<name>.log` (appended to) and
`<name>.log.1` (the one before), each at most half the cap (`LAMINA_LOG_MAX_MB`). A write
that would overfill the active segment rotates first: the active segment becomes the
previous one and the previous one is dropped (oldest first); when that drops anything, the
new segment begins with a marker line saying how much. Lines are the function's output
plus the START/END/REPORT lines, in order, as CloudWatch Logs would hold them.

Invariants: sizes are tracked in memory (one stat per rotation, none per write); nothing
is written outside `<data dir>/logs/<region>/` and no symlink is followed (every open is
O_NOFOLLOW relative to its parent's descriptor); after `LogSink.remove` every handle of
the removed function drops what it is given, so a function re-created under the same name
starts an empty log. `FunctionLog.write` also meters the function's log rate and answers
how long its output should not be read. `LogReader` reads both segments in order and
follows across rotations (`lamina logs [--follow]`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("lamina.observe")

TAIL_BYTES = 4096
MB = 1024 * 1024
DEFAULT_MAX_BYTES = 64 * MB
# A function logging faster than this waits on its own writes (its output is not read until
# it is back under the rate): the server's work on one function's output stays bounded.
# Measured before the bound: one function printing flat out kept the event loop ~75 % busy.
RATE_BYTES_PER_SECOND = 8 * MB
BURST_BYTES = 8 * MB
MARKER_RESERVE = 256  # room kept in each segment for the marker line that may start it
MIN_MAX_BYTES = 4 * MARKER_RESERVE
ACTIVE, PREVIOUS = ".log", ".log.1"
DROPPED = "oldest log lines were dropped"  # the marker's wording, for readers and tests
# function names and regions as the API accepts them; anything else never reaches a path
_COMPONENT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def safe_component(value: str) -> bool:
    return _COMPONENT.fullmatch(value) is not None


def log_path(data_dir: Path, region: str, function_name: str) -> Path:
    """The active segment (the previous one is the same path with `.1` appended)."""
    return data_dir / "logs" / region / f"{function_name}{ACTIVE}"


def tail(data: bytes, limit: int = TAIL_BYTES) -> bytes:
    """The last `limit` bytes, as `LogType=Tail` returns them."""
    return data[-limit:]


def _utc_stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _size_text(size: int) -> str:
    return f"{size // MB} MB" if size % MB == 0 else f"{size} bytes"


def marker(dropped: int, max_bytes: int) -> bytes:
    return (f"[lamina] {_utc_stamp()} {dropped} bytes of this function's {DROPPED} to keep its log "
            f"within {_size_text(max_bytes)} (LAMINA_LOG_MAX_MB)\n").encode()


class FunctionLog:
    """One function's log. `write` is called on every output chunk and START/END/REPORT line;
    it never raises: a log that cannot be written loses the data and says so once in the
    server's log. Thread-safe (one lock per function)."""

    def __init__(self, sink: LogSink, region: str, name: str) -> None:
        self._sink = sink
        self.region, self.name = region, name
        self._active, self._previous = f"{name}{ACTIVE}", f"{name}{PREVIOUS}"
        self._lock = threading.Lock()
        self._fd = -1
        self._size = 0           # bytes in the active segment
        self._ends_line = True   # the last byte written was a newline
        self._closed = not (safe_component(region) and safe_component(name))
        self._warned = False
        # the sink's figures, copied: write() runs for every chunk and line
        self._segment, self._rate, self._burst = sink.segment_bytes, float(sink.rate_bytes), float(sink.burst_bytes)
        self._tokens = self._burst
        self._stamp = time.monotonic()

    def write(self, data: bytes) -> float:
        """Append `data`; returns 0.0, or the seconds for which the caller should stop reading
        more of the function's output because it is over its log rate."""
        if not data:
            return 0.0
        with self._lock:
            if self._closed:
                return 0.0
            try:
                if self._fd < 0:
                    self._open()
                if self._size + len(data) > self._segment:
                    data = self._rotate(data)
                written = os.write(self._fd, data)
            except OSError as exc:
                self._failed(exc)
                return 0.0
            self._size += written
            self._ends_line = data[-1] == 10  # b"\n"
            if self._warned:
                self._warned = False
                log.warning("the log of %s/%s is written again", self.region, self.name)
            now = time.monotonic()
            tokens = self._tokens + (now - self._stamp) * self._rate
            if tokens > self._burst:
                tokens = self._burst
            self._tokens = tokens = tokens - written
            self._stamp = now
            return 0.0 if tokens >= 0.0 else -tokens / self._rate

    def remove(self) -> None:
        """Drop the log: later writes through this handle are discarded. The fd is closed
        before the files are unlinked, under the lock: no write lands in an unlinked file,
        whose space the disk would lose, unseen, for as long as a descriptor held it."""
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if not (safe_component(self.region) and safe_component(self.name)):
                return
            try:
                dir_fd = self._sink.region_dir(self.region, create=False)
                for entry in (self._active, self._previous) if dir_fd >= 0 else ():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry, dir_fd=dir_fd)
            except OSError as exc:
                log.warning("could not remove the log of %s/%s: %s", self.region, self.name, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- internals (lock held) ------------------------------------------------------------
    def _open(self) -> None:
        """Open (or create) the active segment; a log left bigger than the cap allows (by an
        older Lamina) is cut to size here, once."""
        dir_fd = self._sink.region_dir(self.region, create=True)
        fd = os.open(self._active, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, f"{self._active} is not a regular file")
            segment = self._sink.segment_bytes
            dropped = 0
            with contextlib.suppress(FileNotFoundError):
                previous = os.stat(self._previous, dir_fd=dir_fd, follow_symlinks=False).st_size
                if previous > segment:
                    os.unlink(self._previous, dir_fd=dir_fd)
                    dropped += previous
            size = st.st_size
            if size > segment:
                os.ftruncate(fd, 0)
                dropped += size
                size = 0
            ends_line = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
            if dropped:
                size += os.write(fd, (b"" if ends_line else b"\n") + marker(dropped, self._sink.max_bytes))
                ends_line = True
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._size, self._ends_line = fd, size, ends_line

    def _rotate(self, data: bytes) -> bytes:
        """Make room for `data` in a fresh segment; returns what to write there (the marker
        first when anything was dropped, then as much of `data` as a segment holds)."""
        room = self._segment - MARKER_RESERVE
        dropped = 0
        if len(data) > room:  # one chunk bigger than a segment: its tail is what matters
            dropped += len(data) - room
            data = data[-room:]
        if self._size > 0:
            dir_fd = self._sink.region_dir(self.region, create=True)
            with contextlib.suppress(FileNotFoundError):
                dropped += os.stat(self._previous, dir_fd=dir_fd, follow_symlinks=False).st_size
            # rename replaces the previous segment (and never follows a link there)
            os.rename(self._active, self._previous, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.close(self._fd)
            self._fd = -1
            self._fd = os.open(self._active, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
            self._size = 0
        if not dropped:
            return data
        # the marker is a line of its own even when the segment before ended mid-line
        return (b"" if self._ends_line else b"\n") + marker(dropped, self._sink.max_bytes) + data

    def _failed(self, exc: OSError) -> None:
        if self._fd >= 0:  # reopened (and re-measured) by the next write
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if not self._warned:
            self._warned = True
            log.warning("could not write the log of %s/%s, output is lost until it can: %s",
                        self.region, self.name, exc)


class LogSink:
    """Every function's log under `<data dir>/logs`: hands out one `FunctionLog` per function
    (the same one until the function is removed)."""

    def __init__(self, data_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 rate_bytes: int = RATE_BYTES_PER_SECOND, burst_bytes: int = BURST_BYTES) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"a function's log cap must be at least {MIN_MAX_BYTES} bytes")
        self._data_dir = data_dir
        self.max_bytes = max_bytes
        self.segment_bytes = max_bytes // 2
        self.rate_bytes = rate_bytes
        self.burst_bytes = burst_bytes
        self._logs: dict[tuple[str, str], FunctionLog] = {}
        self._dirs: dict[str, int] = {}
        self._root = -1
        self._lock = threading.Lock()

    def open(self, region: str, function_name: str) -> FunctionLog:
        """The function's log (files are opened on the first write)."""
        key = (region, function_name)
        handle = self._logs.get(key)
        if handle is None:
            with self._lock:
                handle = self._logs.get(key)
                if handle is None:
                    handle = self._logs[key] = FunctionLog(self, region, function_name)
        return handle

    def write(self, region: str, function_name: str, data: bytes) -> float:
        return self.open(region, function_name).write(data)

    def remove(self, region: str, function_name: str) -> None:
        """Delete the function's log (both segments). Handles still held (by environments of
        the deleted function that are still ending) drop what they are given from now on."""
        with self._lock:
            handle = self._logs.pop((region, function_name), None)
        (handle or FunctionLog(self, region, function_name)).remove()

    def sweep(self, keep: set[tuple[str, str]]) -> int:
        """Remove the logs of functions not in `keep` ((region, name) pairs): those deleted
        while an older Lamina, which left logs behind, ran. Returns how many were removed."""
        removed = 0
        root = self._root_dir(create=False)
        if root < 0:
            return 0
        for region in os.listdir(root):
            if not safe_component(region):
                continue
            try:
                entries = os.listdir(self.region_dir(region, create=False))
            except (OSError, ValueError):
                continue
            names = {entry.removesuffix(PREVIOUS).removesuffix(ACTIVE) for entry in entries
                     if entry.endswith((ACTIVE, PREVIOUS))}
            for name in names:
                if safe_component(name) and (region, name) not in keep:
                    self.remove(region, name)
                    removed += 1
        return removed

    def close(self) -> None:
        with self._lock:
            handles = list(self._logs.values())
            self._logs.clear()
            fds = [*self._dirs.values(), self._root]
            self._dirs.clear()
            self._root = -1
        for handle in handles:
            handle.close()
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    # -- directories ----------------------------------------------------------------------
    def _root_dir(self, *, create: bool) -> int:
        with self._lock:
            if self._root < 0:
                # the data dir itself is the operator's choice (it may be a symlink); below it, nothing is
                self._root = _open_dir(os.open(self._data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC),
                                       "logs", create)
            return self._root

    def region_dir(self, region: str, *, create: bool) -> int:
        """A descriptor of `logs/<region>` (kept open), or -1 when it does not exist and
        `create` is false."""
        if not safe_component(region):
            raise ValueError(f"not a region: {region!r}")
        fd = self._dirs.get(region)
        if fd is not None:
            return fd
        root = self._root_dir(create=create)
        if root < 0:
            return -1
        with self._lock:
            fd = self._dirs.get(region)
            if fd is None:
                fd = _open_dir(os.dup(root), region, create)
                if fd >= 0:
                    self._dirs[region] = fd
            return fd


def _open_dir(parent: int, name: str, create: bool) -> int:
    """Open `name` under `parent` (which is closed) without following a symlink; -1 when it
    is missing and not to be created."""
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if create:
                raise
            return -1
    finally:
        os.close(parent)


# -- reading (`lamina logs`) ---------------------------------------------------------------

def _open_segment(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _path_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _copy_rest(fd: int, emit: Callable[[bytes], object]) -> None:
    while chunk := os.read(fd, 1 << 20):
        emit(chunk)


class LogReader:
    """Reads a function's log oldest first, then what is appended (`poll` again), following
    the active segment across rotations: when the name points at a new file, the rest of
    the old one is read first, then the new one from its start. A reader that falls more
    than a segment behind misses what was dropped, and the marker says so."""

    def __init__(self, data_dir: Path, region: str, function_name: str) -> None:
        self._active = log_path(data_dir, region, function_name)
        self._previous = self._active.with_name(self._active.name + ".1")
        self._valid = safe_component(region) and safe_component(function_name)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def poll(self, emit: Callable[[bytes], object]) -> bool:
        """Hand everything new to `emit`, in chunks; False while there is no log at all."""
        if not self._valid:
            return False
        if self._fd is None:
            fd = _open_segment(self._active)
            if fd is None:
                return False
            self._read_previous(emit, skip={_identity(fd)})
            self._fd, self._identity = fd, _identity(fd)
        _copy_rest(self._fd, emit)
        current = _path_identity(self._active)
        if current is not None and current != self._identity:  # rotated (or deleted and made anew)
            new = _open_segment(self._active)
            if new is not None:
                _copy_rest(self._fd, emit)  # what was written before the rotation
                assert self._identity is not None
                self._read_previous(emit, skip={self._identity, _identity(new)})
                os.close(self._fd)
                self._fd, self._identity = new, _identity(new)
                _copy_rest(new, emit)
        return True

    def _read_previous(self, emit: Callable[[bytes], object], skip: set[tuple[int, int]]) -> None:
        """The previous segment, unless it is one already read (or about to be)."""
        fd = _open_segment(self._previous)
        if fd is None:
            return
        try:
            if _identity(fd) not in skip:
                _copy_rest(fd, emit)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
