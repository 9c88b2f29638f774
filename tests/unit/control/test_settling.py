"""The function lifecycle: every transition the tables list, and nothing else."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lamina.control.settling import begin_update, settled
from lamina.domain.lifecycle import IllegalTransition
from lamina.domain.model import CodeRef, FunctionConfig, FunctionState, LastUpdateStatus


def created() -> FunctionConfig:
    return FunctionConfig(region="us-east-1", account_id="000000000000", name="fn", runtime="python3.11",
                          handler="app.handler", role="r", code=CodeRef("0" * 64, "sha", 1, 1))


def test_a_new_function_becomes_active_or_failed() -> None:
    active = settled(created(), None)
    assert (active.state, active.last_update_status, active.state_reason) == (
        FunctionState.ACTIVE, LastUpdateStatus.SUCCESSFUL, None)
    failed = settled(created(), "not a zip")
    assert (failed.state, failed.state_reason_code) == (FunctionState.FAILED, "InvalidZipFileException")
    assert failed.state_reason == "Lamina could not prepare the code: not a zip"
    assert active.revision_id != created().revision_id


def test_an_update_goes_in_progress_then_settles() -> None:
    active = settled(created(), None)
    updating = begin_update(active)
    assert updating.last_update_status is LastUpdateStatus.IN_PROGRESS
    done = settled(updating, None)
    assert (done.state, done.last_update_status) == (FunctionState.ACTIVE, LastUpdateStatus.SUCCESSFUL)
    broken = settled(begin_update(done), "corrupt")
    assert (broken.state, broken.last_update_status) == (FunctionState.ACTIVE, LastUpdateStatus.FAILED)
    assert begin_update(broken).last_update_status is LastUpdateStatus.IN_PROGRESS  # a failed update may be retried


def test_settling_what_is_not_in_progress_is_refused() -> None:
    active = settled(created(), None)
    with pytest.raises(IllegalTransition, match="last update status"):
        settled(active, None)  # Successful -> Successful: nothing was in progress
    with pytest.raises(IllegalTransition):
        begin_update(replace(active, last_update_status=LastUpdateStatus.IN_PROGRESS))
