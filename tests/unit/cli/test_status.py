"""`lamina status` rendering of the /_lamina/status document, and the unreachable-server exit."""

from __future__ import annotations

import argparse
import socket

import pytest

from lamina.cli.status import add_status_parser, render_status, signing_keys, status_command

SAMPLE = {
    "capacity_mb": 18078, "reserved_mb": 640, "disk_capacity_mb": 40960, "disk_reserved_mb": 2048,
    "concurrency_limit": 141, "concurrent_executions": 3,
    "functions": {
        "us-east-1/zeta": {"environments": {"starting": 1, "idle": 0, "busy": 2, "provisioned": 0},
                           "concurrent_executions": 3, "invocations": 1234, "errors": 5, "throttles": 7,
                           "cold_starts": 3, "forked_starts": 2, "memory_mb": 384, "disk_mb": 1536},
        "eu-west-1/alpha": {"environments": {"idle": 2},
                            "concurrent_executions": 0, "invocations": 9, "errors": 0, "throttles": 0,
                            "cold_starts": 2, "forked_starts": 0, "memory_mb": 256, "disk_mb": 1024},
    },
}


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_table_has_one_sorted_row_per_function_and_a_totals_line() -> None:
    rows = _rows(render_status(SAMPLE))
    assert rows[0] == ["FUNCTION", "STARTING", "IDLE", "BUSY", "PROVISIONED", "CONC", "INVOKES", "ERRORS",
                       "THROTTLES", "COLD", "FORKED", "MEM_MB", "DISK_MB"]
    assert rows[1] == ["eu-west-1/alpha", "0", "2", "0", "0", "0", "9", "0", "0", "2", "0", "256", "1024"]
    assert rows[2] == ["us-east-1/zeta", "1", "0", "2", "0", "3", "1234", "5", "7", "3", "2", "384", "1536"]
    assert render_status(SAMPLE).splitlines()[-1] == (
        "capacity 18078 MB, reserved 640 MB, disk capacity 40960 MB, disk reserved 2048 MB, "
        "concurrency limit 141, concurrent executions 3")


def test_columns_are_aligned() -> None:
    lines = render_status(SAMPLE).splitlines()[:3]
    # numbers are right-aligned: every row of the table ends at the same column
    assert len({len(line) for line in lines}) == 1


def test_missing_fields_show_as_dashes() -> None:
    text = render_status({"functions": {"us-east-1/f": {"environments": {"busy": 1}}}})
    rows = _rows(text)
    assert rows[1] == ["us-east-1/f", "0", "0", "1", "0", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert text.splitlines()[-1] == ("capacity - MB, reserved - MB, disk capacity - MB, disk reserved - MB, "
                                     "concurrency limit -, concurrent executions -")


def test_no_functions() -> None:
    text = render_status({"capacity_mb": 100, "reserved_mb": 0, "concurrency_limit": 1,
                          "concurrent_executions": 0, "functions": {}})
    assert "(no environments)" in text.splitlines()


def test_asynchronous_counters_follow_in_a_table_of_their_own() -> None:
    data = {**SAMPLE, "functions": {**SAMPLE["functions"], "us-east-1/queue": {"async": {
        "queued": 12, "in_flight": 2, "oldest_event_age_s": 3.5, "accepted": 20, "succeeded": 5, "retried": 1,
        "failed": 1, "dead_lettered": 1, "throttled": 0, "dropped": 0}}}}
    lines = render_status(data).splitlines()
    start = lines.index("") + 1
    assert _rows("\n".join(lines[start:])) == [
        ["ASYNC", "QUEUED", "IN_FLIGHT", "OLDEST_S", "ACCEPTED", "SUCCEEDED", "RETRIED", "FAILED",
         "DEAD_LETTERED", "THROTTLED", "DROPPED"],
        ["us-east-1/queue", "12", "2", "3.5", "20", "5", "1", "1", "1", "0", "0"],
    ]
    assert "ASYNC" not in render_status(SAMPLE)


def test_unreachable_server_exits_1_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    parser = argparse.ArgumentParser()
    add_status_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "--endpoint", f"http://127.0.0.1:{port}"])
    assert status_command(args) == 1
    assert f"cannot reach a Lamina server at http://127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(("env", "keys"), [
    ({}, ("test", "test")),
    ({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}, ("AKID", "s")),
    ({"AWS_ACCESS_KEY_ID": "AKID"}, ("test", "test")),  # half a pair is no pair
    ({"LAMINA_CREDENTIALS": "ops:secret,ci:other", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"},
     ("ops", "secret")),
    ({"LAMINA_CREDENTIALS": " , ops : s:with:colons "}, ("ops", "s:with:colons")),
])
def test_signing_keys_prefer_the_servers_own_setting(env: dict[str, str], keys: tuple[str, str]) -> None:
    assert signing_keys(env) == keys
