"""An environment's log: its runtime's output and the START/END/REPORT lines, in order.

`InvocationLog` writes through the function's log writer and keeps what one invocation
logged (its tail is what `LogType=Tail` returns); what the runtime writes during init goes
to its first invocation's capture. `OutputPump` reads the runtime's output pipe as it
comes, and paces it: while the writer says the function is over its log rate, the pipe is
left unread, so that the function's own writes wait (its pipe fills) rather than the
server doing the work. Everything runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from typing import Literal

from lamina.sandbox.linux import SandboxProcess

# At the end of an invocation, at most this much of what the function already wrote is read
# before END: a full pipe, which is all a writer can have written without waiting (1 MiB is
# the most an unprivileged process can make its pipe hold). A function that keeps writing
# meanwhile is read by the pump later, not in a loop here.
DRAIN_LIMIT_BYTES = 1 << 20
# Only the tail of a capture is ever returned: keep at most this much, cut to the last 8 KiB.
CAPTURE_LIMIT_BYTES = 65536
CAPTURE_KEEP_BYTES = 8192

Status = Literal["timeout", "error"]


def utc_stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class InvocationLog:
    def __init__(self, writer: Callable[[bytes], float], version: str, memory_mb: int) -> None:
        self._writer = writer
        self._version = version
        self._memory_mb = memory_mb
        self._capture: bytearray | None = bytearray()  # init output goes to the first invocation's tail

    def emit(self, data: bytes) -> float:
        """Log `data` (and keep it for the tail); returns the writer's pause (`FunctionLog.write`)."""
        pause = self._writer(data)
        if self._capture is not None:
            self._capture += data
            if len(self._capture) > CAPTURE_LIMIT_BYTES:
                del self._capture[:-CAPTURE_KEEP_BYTES]
        return pause

    def platform(self, text: str) -> None:
        """A line of the platform's own (INIT_START): in the log, not in any invocation's tail."""
        self._writer(text.encode())

    def start(self, rid: str) -> None:
        if self._capture is None:
            self._capture = bytearray()
        self.emit(f"START RequestId: {rid} Version: {self._version}\n".encode())

    def timed_out(self, rid: str, timeout_s: float) -> None:
        self.emit(f"{utc_stamp()} {rid} Task timed out after {timeout_s:.2f} seconds\n".encode())

    def end(self, rid: str, duration: float, init_ms: float | None, status: Status | None,
            error_type: str | None, max_memory_bytes: int) -> bytes:
        """Write END and REPORT; return the invocation's captured log. The init phase of an
        on-demand environment is billed with its first invocation, as on AWS since 2025-08."""
        self.emit(f"END RequestId: {rid}\n".encode())
        billed = max(1, math.ceil(duration + (init_ms or 0.0)))
        report = (f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {billed} ms\tMemory Size: {self._memory_mb} MB\t"
                  f"Max Memory Used: {max_memory_bytes // 1048576} MB\t")
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if status is not None:
            report += f"Status: {status}\t"
            if error_type and status == "error":
                report += f"Error Type: {error_type}\t"
        self.emit(report.encode() + b"\n")
        captured = bytes(self._capture or b"")
        self._capture = None
        return captured


class OutputPump:
    """Moves one sandbox's output into its `InvocationLog`, at most at the log's rate."""

    def __init__(self, proc: SandboxProcess, log: InvocationLog, loop: asyncio.AbstractEventLoop) -> None:
        self._proc = proc
        self._log = log
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None  # output not read until it fires
        self._stopped = False
        loop.add_reader(proc.output_fd, self._read)

    def _read(self) -> None:
        proc = self._proc
        data = proc.read_output(self._loop)
        if data and (pause := self._log.emit(data)) > 0.0 and proc.output_fd >= 0:
            # over its log rate: leave the output unread for a while
            self._loop.remove_reader(proc.output_fd)
            self._timer = self._loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        self._timer = None
        if self._proc.output_fd >= 0 and not self._stopped:
            self._loop.add_reader(self._proc.output_fd, self._read)

    def drain(self) -> None:
        """Read what is already written (up to a full pipe), so that it lands before END/REPORT."""
        fd = self._proc.output_fd
        if fd < 0:
            return
        left = DRAIN_LIMIT_BYTES
        while left > 0:
            try:
                data = os.read(fd, left)
            except OSError:  # BlockingIOError included: nothing more is written yet
                return
            if not data:
                return
            left -= len(data)
            self._log.emit(data)

    def stop(self) -> None:
        """No more reads (the process's descriptors are closed by its owner)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
