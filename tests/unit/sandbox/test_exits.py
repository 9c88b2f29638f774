"""Exit classification: statuses and signals as values, and the messages AWS's runtimes show."""

from __future__ import annotations

import signal

import pytest

from lamina.sandbox import exits
from lamina.sandbox.exits import ErrorType, Exit, ExitKind


@pytest.mark.parametrize(("rc", "text", "sigkilled"), [
    (None, "signal: killed", True),            # no status at all: it was killed
    (-signal.SIGKILL, "signal: killed", True),
    (128 + signal.SIGKILL, "signal: killed", True),   # bwrap's way of saying it
    (-signal.SIGSEGV, "signal: segmentation fault", False),
    (128 + signal.SIGABRT, "signal: aborted", False),
    (129, "exit status 129", False),           # Node's RIC exits 129 on its own: not SIGHUP
    (-signal.SIGTERM, "exit status -15", False),
    (0, "exit status 0", False),
    (3, "exit status 3", False),
])
def test_statuses_are_classified(rc: int | None, text: str, sigkilled: bool) -> None:
    exit = exits.from_status(rc)
    assert str(exit) == text
    assert exit.sigkilled is sigkilled


def test_messages() -> None:
    assert exits.message(Exit(ExitKind.EXITED, 0)) == "Error: Runtime exited without providing a reason"
    assert exits.message(Exit(ExitKind.EXITED, 2)) == "Error: Runtime exited with error: exit status 2"
    assert exits.message(exits.TIMED_OUT) == "Error: Runtime exited with error: timeout"
    assert exits.message(exits.DESTROYED) == "Error: Runtime exited with error: destroyed"


def test_error_types_are_the_wire_names() -> None:
    assert {str(t) for t in ErrorType} == {
        "Runtime.ExitError", "Runtime.OutOfMemory", "Sandbox.Timedout", "Runtime.Unknown",
        "Runtime.InvalidEntrypoint", "Unhandled"}
    reply = exits.failure(ErrorType.TIMED_OUT, "Task timed out after 1.00 seconds")
    assert not reply.ok and reply.error_type == "Sandbox.Timedout"
    assert reply.body == b'{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}'
