"""Supervisor: a failing background task is reported and stops the server; cancelling is not failing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lamina.tasks import Supervisor


def test_a_crash_is_logged_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    crashes: list[BaseException] = []

    async def boom() -> None:
        raise ValueError("a bug")

    async def main() -> None:
        supervisor = Supervisor(on_crash=crashes.append)
        supervisor.spawn(boom(), name="reaper")
        supervisor.spawn(boom(), name="dispatcher")
        await asyncio.sleep(0.01)
        assert supervisor.running == 0
        assert isinstance(supervisor.crashed, ValueError)

    with caplog.at_level(logging.ERROR, logger="lamina"):
        asyncio.run(main())
    assert len(crashes) == 1 and str(crashes[0]) == "a bug"
    assert "background task reaper failed" in caplog.text


def test_cancelled_and_finished_tasks_are_not_crashes() -> None:
    crashes: list[BaseException] = []

    async def main() -> None:
        supervisor = Supervisor(on_crash=crashes.append)
        done = supervisor.spawn(asyncio.sleep(0), name="quick")
        supervisor.spawn(asyncio.sleep(3600), name="forever")
        await done
        assert supervisor.running == 1
        await supervisor.close()
        assert supervisor.running == 0

    asyncio.run(main())
    assert crashes == []
