"""The invocation log's lines, in CloudWatch's format, and what one invocation captures."""

from __future__ import annotations

from lamina.sandbox.invocation_log import CAPTURE_KEEP_BYTES, CAPTURE_LIMIT_BYTES, InvocationLog


def test_start_end_report_and_the_capture() -> None:
    written: list[bytes] = []
    log = InvocationLog(lambda data: written.append(data) or 0.0, "$LATEST", 128)
    log.emit(b"init output\n")            # before the first invocation: goes to its tail
    log.start("r1")
    log.emit(b"hello\n")
    captured = log.end("r1", 1.234, 20.5, None, None, 5 * 1048576)
    lines = captured.decode().splitlines()
    assert lines[:3] == ["init output", "START RequestId: r1 Version: $LATEST", "hello"]
    assert lines[3] == "END RequestId: r1"
    assert lines[4] == ("REPORT RequestId: r1\tDuration: 1.23 ms\tBilled Duration: 22 ms\tMemory Size: 128 MB\t"
                        "Max Memory Used: 5 MB\tInit Duration: 20.50 ms\t")
    assert b"".join(written) == captured
    log.emit(b"between invocations\n")   # logged, but in no invocation's tail
    log.start("r2")
    captured = log.end("r2", 0.1, None, "error", "Runtime.ExitError", 0)
    assert captured.startswith(b"START RequestId: r2")
    assert captured.endswith(b"Status: error\tError Type: Runtime.ExitError\t\n")


def test_a_timeout_reports_its_status_without_an_error_type() -> None:
    log = InvocationLog(lambda data: 0.0, "3", 256)
    log.start("r")
    log.timed_out("r", 3.0)
    captured = log.end("r", 3000.0, None, "timeout", "Sandbox.Timedout", 0)
    assert b" r Task timed out after 3.00 seconds\n" in captured
    assert captured.endswith(b"Status: timeout\t\n")


def test_the_capture_keeps_only_a_tail() -> None:
    log = InvocationLog(lambda data: 0.0, "$LATEST", 128)
    log.start("r")
    for _ in range(100):
        log.emit(b"x" * 1000 + b"\n")
    captured = log.end("r", 1.0, None, None, None, 0)
    assert len(captured) < CAPTURE_LIMIT_BYTES
    assert captured.endswith(b"\t\n") and len(captured) > CAPTURE_KEEP_BYTES
