"""Runtime lifecycle dates as data, the rules they make, and runtime version ARNs.

Pure logic: dates are passed in, never read from the clock (the rules' `on`, the model
rule's `today` patched), so these tests mean the same on any day.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.loaders import create_loader

from lamina.api import constraints
from lamina.control.code import CodeStore
from lamina.control.functions import FunctionService
from lamina.control.publishing import PublishingService
from lamina.control.repository import FunctionRepository
from lamina.control.rules import check_code_updatable, check_runtime
from lamina.control.runtime_management import RuntimeManagementService
from lamina.domain.model import FunctionState, LastUpdateStatus, UpdateRuntimeOn
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException, PreconditionFailedException, ResourceConflictException
from lamina.runtimes import lifecycle
from lamina.runtimes.lifecycle import DATES, create_blocked, no_longer_supported, update_blocked
from lamina.runtimes.versions import runtime_version_arn, runtime_version_region
from lamina.settings import Settings
from lamina.store.blobs import FileBlobStore
from lamina.store.metadata import SqlMetadataStore

DAY = timedelta(days=1)
BOTOCORE_RUNTIMES: list[str] = create_loader().load_service_model("lambda", "service-2")["shapes"]["Runtime"]["enum"]


class Served:
    """What the function service asks of the catalog: which runtimes this host serves."""

    def __init__(self, *names: str) -> None:
        self.names = sorted(names)

    def plan(self, runtime: str) -> object | None:
        return SimpleNamespace(note=None) if runtime in self.names else None

    def kept_versions(self, runtime: str, region: str) -> list[str]:
        return []  # no older images on this host


CATALOG: Any = Served("python3.11", "python3.13", "nodejs20.x", "nodejs22.x", "provided.al2023")


# --- the data ------------------------------------------------------------------------------------

# (deprecation, block create, block update) as ../shared/reference/runtimes-and-environment.md
# lists them (AWS, 2026-09-29)
REFERENCE = {
    "nodejs24.x": ("2028-04-30", "2028-06-01", "2028-07-01"),
    "nodejs22.x": ("2027-04-30", "2027-06-01", "2027-07-01"),
    "nodejs20.x": ("2026-04-30", "2027-02-01", "2027-03-03"),
    "nodejs18.x": ("2025-09-01", "2027-02-01", "2027-03-03"),
    "python3.14": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.13": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.12": ("2028-10-31", "2028-11-30", "2029-01-10"),
    "python3.11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "python3.10": ("2026-10-31", "2027-02-01", "2027-03-03"),
    "python3.9": ("2025-12-15", "2027-02-01", "2027-03-03"),
    "java25": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "java21": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "java17": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "java11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "java8.al2": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "dotnet10": ("2028-11-14", "2028-12-14", "2029-01-15"),
    "dotnet8": ("2026-11-10", "2027-02-01", "2027-03-03"),
    "ruby4.0": ("2029-03-31", "2029-04-30", "2029-05-31"),
    "ruby3.4": ("2028-03-31", "2028-04-30", "2028-05-31"),
    "ruby3.3": ("2027-03-31", "2027-04-30", "2027-05-31"),
    "ruby3.2": ("2026-03-31", "2027-02-01", "2027-03-03"),
    "provided.al2023": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "provided.al2": ("2026-07-31", "2027-02-01", "2027-03-03"),
}


@pytest.mark.parametrize("runtime", sorted(REFERENCE))
def test_dates_are_the_reference_dates(runtime: str) -> None:
    dates = DATES[runtime]
    assert (dates.deprecation, dates.block_create, dates.block_update) == tuple(
        date.fromisoformat(d) for d in REFERENCE[runtime])


def test_every_runtime_botocore_knows_has_dates() -> None:
    assert [r for r in BOTOCORE_RUNTIMES if r not in DATES] == []


def test_dates_match_cfn_lint_when_it_is_installed() -> None:
    """The source the reference names (cfn-lint's copy of AWS's table), where this machine has it."""
    cfnlint = pytest.importorskip("cfnlint")
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "LmbdRuntimeLifecycle.json"
    if not path.is_file():
        pytest.skip("cfn-lint without its lifecycle table")
    table = json.loads(path.read_text())
    if table.get("nodejs20.x", {}).get("create-block") != "2027-02-01":
        pytest.skip("an older cfn-lint, from before AWS moved the dates")
    for runtime, entry in table.items():
        expected = tuple(date.fromisoformat(entry[k]) if entry[k] else None
                         for k in ("deprecated", "create-block", "update-block"))
        dates = DATES[runtime]
        assert (dates.deprecation, dates.block_create, dates.block_update) == expected, runtime


def test_every_date_is_ordered_create_before_update() -> None:
    for runtime, dates in DATES.items():
        if dates.block_create and dates.block_update:
            assert dates.block_create <= dates.block_update, runtime


# --- the rule --------------------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", sorted(REFERENCE))
def test_a_block_starts_on_its_date(runtime: str) -> None:
    dates = DATES[runtime]
    assert dates.block_create is not None and dates.block_update is not None
    assert not create_blocked(runtime, dates.block_create - DAY)
    assert create_blocked(runtime, dates.block_create)
    assert not update_blocked(runtime, dates.block_update - DAY)
    assert update_blocked(runtime, dates.block_update)


def test_a_runtime_without_dates_is_never_blocked() -> None:
    far = date(2100, 1, 1)
    for runtime in ("nodejs26.x", "python3.15", "no-such-runtime", "dotnet9"):
        assert not create_blocked(runtime, far) and not update_blocked(runtime, far)


def test_today_is_a_utc_date() -> None:
    assert isinstance(lifecycle.today(), date)


def test_the_message_is_aws_s() -> None:
    # recorded from AWS (test_create_deprecated_function_runtime_with_validation_enabled)
    assert no_longer_supported("go1.x") == (
        "The runtime parameter of go1.x is no longer supported for creating or updating AWS Lambda functions. "
        "We recommend you use a supported runtime while creating or updating functions.")


def _refusal(runtime: str | None, on: date, *, updating: bool = False) -> str | None:
    try:
        check_runtime(CATALOG, runtime, on=on, updating=updating)
    except InvalidParameterValueException as exc:
        return exc.message
    return None


@pytest.mark.parametrize("runtime", ["python3.7", "nodejs12.x", "go1.x", "provided", "java8", "dotnetcore3.1",
                                     "ruby2.7", "nodejs14.x"])
def test_create_with_a_blocked_runtime_is_aws_s_error(runtime: str) -> None:
    assert _refusal(runtime, date(2026, 12, 3)) == no_longer_supported(runtime)


def test_create_is_blocked_from_the_block_create_date() -> None:
    assert _refusal("nodejs20.x", date(2027, 1, 31)) is None
    assert _refusal("nodejs20.x", date(2027, 2, 1)) == no_longer_supported("nodejs20.x")


def test_update_is_blocked_from_the_block_update_date_only() -> None:
    # between the two dates a function may still be set to (or keep) the runtime
    assert _refusal("nodejs20.x", date(2027, 2, 15), updating=True) is None
    assert _refusal("nodejs20.x", date(2027, 3, 3), updating=True) == no_longer_supported("nodejs20.x")


def test_a_runtime_aws_accepts_but_this_host_does_not_serve_says_so() -> None:
    message = _refusal("java21", date(2026, 12, 3))
    assert message is not None and "not available on this Lamina host" in message


def test_a_blocked_runtime_gets_aws_s_error_before_lamina_s() -> None:
    # java8 is not served here either: AWS's refusal comes first
    assert _refusal("java8", date(2026, 12, 3)) == no_longer_supported("java8")


def test_no_runtime_is_refused_as_aws_refuses_it() -> None:
    message = _refusal(None, date(2026, 12, 3))
    assert message == "Runtime and Handler are mandatory parameters for functions created with deployment packages."


def test_code_updates_stop_at_the_block_update_date() -> None:
    check_code_updatable("nodejs20.x", on=date(2027, 3, 2))
    check_code_updatable(None, on=date(2100, 1, 1))  # a container image has no runtime
    with pytest.raises(InvalidParameterValueException) as caught:
        check_code_updatable("nodejs20.x", on=date(2027, 3, 3))
    assert caught.value.message == no_longer_supported("nodejs20.x")


# --- the model's enum message lists what CreateFunction still accepts ---------------------------------

# recorded from AWS on 2026-01-12 (test_create_lambda_exceptions): ruby4.0 came later
RECORDED_LISTING = ("nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, "
                    "java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, "
                    "nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2")


def _listed(monkeypatch: pytest.MonkeyPatch, on: date) -> list[str]:
    monkeypatch.setattr(constraints, "today", lambda: on)
    rule = constraints.runtime_rule(BOTOCORE_RUNTIMES)
    with pytest.raises(InvalidParameterValueException) as caught:
        rule({"Runtime": "non-existent-runtime"})
    message = caught.value.message
    assert message.startswith("Value non-existent-runtime at 'runtime' failed to satisfy constraint: ")
    return message.split("[", 1)[1].rsplit("]", 1)[0].split(", ")


def test_the_enum_message_lists_runtimes_not_blocked_for_create(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = _listed(monkeypatch, date(2026, 1, 12))
    assert [r for r in listed if r != "ruby4.0"] == RECORDED_LISTING.split(", ")


def test_the_enum_message_drops_a_runtime_on_its_block_create_date(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "nodejs20.x" in _listed(monkeypatch, date(2027, 1, 31))
    assert "nodejs20.x" not in _listed(monkeypatch, date(2027, 2, 1))


def test_a_known_runtime_passes_the_model_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = constraints.runtime_rule(BOTOCORE_RUNTIMES)
    rule({"Runtime": "python3.7"})  # blocked, but that is the service's refusal, not the model's
    rule({})


# --- settings -----------------------------------------------------------------------------------------

def test_the_lifecycle_date_is_configurable() -> None:
    assert Settings().runtime_lifecycle_date is None
    settings = Settings.from_env({"LAMINA_RUNTIME_LIFECYCLE_DATE": "2027-03-03"})
    assert settings.runtime_lifecycle_date == date(2027, 3, 3)
    with pytest.raises(ValueError, match="LAMINA_RUNTIME_LIFECYCLE_DATE"):
        Settings.from_env({"LAMINA_RUNTIME_LIFECYCLE_DATE": "next tuesday"})


# --- runtime version ARNs -------------------------------------------------------------------------------

MODEL_PATTERN = re.compile(
    create_loader().load_service_model("lambda", "service-2")["shapes"]["RuntimeVersionArn"]["pattern"])


def test_a_runtime_version_arn_is_aws_s_shape() -> None:
    arn = runtime_version_arn("us-east-1", "python3.13", "ab" * 32)
    assert re.fullmatch(r"arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}", arn)
    assert MODEL_PATTERN.fullmatch(arn)
    assert runtime_version_region(arn) == "us-east-1"


def test_a_runtime_version_arn_names_the_runtime_and_the_image() -> None:
    base = runtime_version_arn("us-east-1", "python3.13", "d1")
    assert runtime_version_arn("us-east-1", "python3.13", "d1") == base
    assert runtime_version_arn("us-east-1", "python3.12", "d1") != base  # served by 3.13's image: its own ARN
    assert runtime_version_arn("us-east-1", "python3.13", "d2") != base
    assert runtime_version_arn("us-east-1", "python3.13", None) != base
    # the region is the ARN's, not the hash's: one image is one runtime version everywhere
    assert runtime_version_arn("eu-west-1", "python3.13", "d1").rsplit(":", 1)[1] == base.rsplit(":", 1)[1]


def test_what_is_not_a_runtime_version_arn_has_no_region() -> None:
    for text in ("arn:aws:lambda:us-east-1:000000000000:function:f", "python3.13", ""):
        assert runtime_version_region(text) is None


# --- which runtime version a function runs on, as its image changes ------------------------------------------

class Images:
    """The image serving each runtime now (what `FunctionService(image_digest=…)` reads), and
    the day it is (what its `today` reads)."""

    def __init__(self) -> None:
        self.digest = "d1"
        self.day = date(2026, 12, 3)

    def __call__(self, runtime: str) -> str | None:
        return self.digest


class NoSettling:
    def schedule(self, cfg: object) -> None:
        pass


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def _arn(digest: str, runtime: str = "python3.11") -> str:
    return runtime_version_arn("us-east-1", runtime, digest)


def _service_test(tmp_path: Path, body: Callable[[FunctionService, Images], Awaitable[None]]) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'lamina.db'}")
    repo = FunctionRepository(store)
    images = Images()
    catalog: Any = CATALOG
    settler: Any = NoSettling()
    functions = FunctionService(repo, CodeStore(FileBlobStore(tmp_path / "blobs")), catalog, settler,
                                today=lambda: images.day, image_digest=images)
    try:
        asyncio.run(body(functions, images))
    finally:
        repo.close()
        store.close()


REF = FunctionRef("000000000000", "us-east-1", "f", None)


async def _settle(functions: FunctionService) -> None:
    """What the settler does once the change is ready: Active, last update Successful."""
    current = functions.latest(REF)
    await functions.repo.save(current, replace(current, state=FunctionState.ACTIVE,
                                               last_update_status=LastUpdateStatus.SUCCESSFUL))


async def _create(functions: FunctionService) -> None:
    await functions.create(REF, zip_file=_zip(), runtime="python3.11", handler="app.handler",
                           role="arn:aws:iam::000000000000:role/r")
    await _settle(functions)


def test_auto_follows_the_image(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        await _create(functions)
        assert functions.runtime_version_arn(functions.latest(REF)) == _arn("d1")
        images.digest = "d2"
        assert functions.runtime_version_arn(functions.latest(REF)) == _arn("d2")
    _service_test(tmp_path, body)


def test_function_update_moves_at_the_next_update(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        rmc = RuntimeManagementService(functions)
        await _create(functions)
        await rmc.put(REF, UpdateRuntimeOn.FUNCTION_UPDATE, None)
        images.digest = "d2"
        assert functions.runtime_version_arn(functions.latest(REF)) == _arn("d1")
        await functions.update_configuration(REF, None, description="changed")
        assert functions.runtime_version_arn(functions.latest(REF)) == _arn("d2")
    _service_test(tmp_path, body)


def test_manual_stays_pinned_until_the_runtime_changes(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        rmc = RuntimeManagementService(functions)
        await _create(functions)
        await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d1"))
        images.digest = "d2"
        await _settle(functions)
        await functions.update_code(REF, _zip(), None)
        assert functions.runtime_version_arn(functions.latest(REF)) == _arn("d1")
        # the current version is runnable, and so is one a version of the function runs (a
        # roll-back); another is not
        await _settle(functions)
        await PublishingService(functions).publish(REF, code_sha256=None, revision_id=None, description=None)
        await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d2"))
        await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d1"))  # version 1 runs it
        with pytest.raises(InvalidParameterValueException, match=r"not a version of the python3\.11 runtime"):
            await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d0"))
        with pytest.raises(InvalidParameterValueException, match=r"not a version of the python3\.11 runtime"):
            await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d2", runtime="python3.13"))
        # a new runtime has no such pin: it moves to that runtime's current version
        await functions.update_configuration(REF, None, runtime="python3.13")
        cfg = functions.latest(REF)
        assert cfg.runtime_update_on is UpdateRuntimeOn.MANUAL
        assert functions.runtime_version_arn(cfg) == _arn("d2", runtime="python3.13")
    _service_test(tmp_path, body)


def test_a_published_version_keeps_latest_s_setting_and_has_its_own(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        rmc = RuntimeManagementService(functions)
        await _create(functions)
        await rmc.put(REF, UpdateRuntimeOn.MANUAL, _arn("d1"))
        published = await PublishingService(functions).publish(REF, code_sha256=None, revision_id=None,
                                                                description=None)
        one = replace(REF, qualifier=published.version)
        assert rmc.get(one).runtime_update_on is UpdateRuntimeOn.MANUAL
        await rmc.put(one, UpdateRuntimeOn.AUTO, None)
        images.digest = "d2"
        assert functions.runtime_version_arn(rmc.get(one)) == _arn("d2")
        assert functions.runtime_version_arn(rmc.get(REF)) == _arn("d1")
    _service_test(tmp_path, body)


def test_latest_is_refused_while_an_update_is_in_progress(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        rmc = RuntimeManagementService(functions)
        await _create(functions)
        await functions.update_configuration(REF, None, description="changed")  # settles later
        with pytest.raises(ResourceConflictException, match="An update is in progress"):
            await rmc.put(REF, UpdateRuntimeOn.FUNCTION_UPDATE, None)
    _service_test(tmp_path, body)


def test_code_updates_are_refused_past_the_block_update_date(tmp_path: Path) -> None:
    async def body(functions: FunctionService, images: Images) -> None:
        await functions.create(REF, zip_file=_zip(), runtime="nodejs20.x", handler="app.handler",
                               role="arn:aws:iam::000000000000:role/r")
        await _settle(functions)
        images.day = date(2027, 3, 3)  # the server kept running past the date
        with pytest.raises(InvalidParameterValueException) as caught:
            await functions.update_code(REF, _zip(), None)
        assert caught.value.message == no_longer_supported("nodejs20.x")
        await functions.update_configuration(REF, None, memory_size=256)  # the runtime left alone
    _service_test(tmp_path, body)


# --- two updates at once ------------------------------------------------------------------------------------

def test_concurrent_updates_get_awss_conflict_not_a_revision_mismatch(tmp_path: Path) -> None:
    """Both requests pass the in-progress check before either write lands (the store write
    yields the loop); the one that loses gets AWS's 409 for an update in progress, not a 412
    about a RevisionId it never sent. With a RevisionId, the mismatch (412) comes first."""
    async def body(functions: FunctionService, images: Images) -> None:
        await _create(functions)

        async def update(turn: str, revision_id: str | None = None) -> BaseException | None:
            try:
                await functions.update_configuration(REF, revision_id, environment={"TURN": turn})
            except (ResourceConflictException, PreconditionFailedException) as exc:
                return exc
            return None

        first, second = await asyncio.gather(update("1"), update("2"))
        assert first is None and isinstance(second, ResourceConflictException), (first, second)
        await _settle(functions)
        revision = functions.latest(REF).revision_id
        first, second = await asyncio.gather(update("3", revision), update("4", revision))
        assert first is None and isinstance(second, PreconditionFailedException), (first, second)
    _service_test(tmp_path, body)
