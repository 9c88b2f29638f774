"""Function logs under the data dir: one append-only file per function and region.

Lines are the function's own stdout/stderr plus the START/END/REPORT lines the platform
writes, in order, as CloudWatch Logs would hold them. `lamina logs` reads these files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TAIL_BYTES = 4096


def log_path(data_dir: Path, region: str, function_name: str) -> Path:
    return data_dir / "logs" / region / f"{function_name}.log"


class LogSink:
    """Appends to function log files; keeps one open descriptor per function."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._fds: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def write(self, region: str, function_name: str, data: bytes) -> None:
        if not data:
            return
        key = (region, function_name)
        fd = self._fds.get(key)
        if fd is None:
            with self._lock:
                fd = self._fds.get(key)
                if fd is None:
                    path = log_path(self._data_dir, region, function_name)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._fds[key] = fd
        os.write(fd, data)

    def forget(self, region: str, function_name: str) -> None:
        with self._lock:
            fd = self._fds.pop((region, function_name), None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def tail(data: bytes, limit: int = TAIL_BYTES) -> bytes:
    """The last `limit` bytes, as `LogType=Tail` returns them."""
    return data[-limit:]
