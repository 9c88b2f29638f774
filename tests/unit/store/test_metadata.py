"""SqlMetadataStore: exact round trips, compare-and-swap, pagination and durability on SQLite."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from lamina import errors
from lamina.domain.model import (
    CodeRef,
    FunctionConfig,
    FunctionState,
    LastUpdateStatus,
    new_revision_id,
)
from lamina.store.metadata import SqlMetadataStore
from lamina.store.protocols import MetadataStore

REVISION_MISMATCH = ("The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")


def make_cfg(name: str = "fn", region: str = "us-east-1", **changes: object) -> FunctionConfig:
    cfg = FunctionConfig(
        region=region, account_id="000000000000", name=name, runtime="python3.11",
        handler="app.handler", role="arn:aws:iam::000000000000:role/r",
        code=CodeRef(blob_key="ab" * 32, sha256_b64="q83vEjRWeJA=", size=321, unzipped_size=999),
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lamina.db'}"


@pytest.fixture
def store(db_url: str) -> SqlMetadataStore:
    return SqlMetadataStore(db_url)


def test_round_trip_is_exact(store: SqlMetadataStore) -> None:
    cfg = make_cfg(
        description="déjà vu ✓", timeout=900, memory_size=10240, ephemeral_storage=2048,
        environment={"A": "1", "EMPTY": "", "UNICODE": "ü"}, architectures=("arm64",),
        state=FunctionState.ACTIVE, state_reason=None, state_reason_code=None,
        last_update_status=LastUpdateStatus.SUCCESSFUL, generation=7,
    )
    store.create_function(cfg)
    loaded = store.get_function("us-east-1", "fn")
    assert loaded == cfg
    assert loaded is not None
    assert isinstance(loaded.state, FunctionState)
    assert isinstance(loaded.last_update_status, LastUpdateStatus)
    assert isinstance(loaded.architectures, tuple)
    assert isinstance(loaded.code, CodeRef)


def test_round_trip_of_defaults_and_nones(store: SqlMetadataStore) -> None:
    cfg = make_cfg(runtime=None, handler=None)
    store.put_function(cfg)
    assert store.get_function("us-east-1", "fn") == cfg


def test_missing_function(store: SqlMetadataStore) -> None:
    assert store.get_function("us-east-1", "nope") is None
    assert store.delete_function("us-east-1", "nope") is False


def test_regions_are_separate(store: SqlMetadataStore) -> None:
    east = make_cfg(region="us-east-1")
    west = make_cfg(region="eu-west-1", memory_size=512)
    store.create_function(east)
    store.create_function(west)
    assert store.get_function("us-east-1", "fn") == east
    assert store.get_function("eu-west-1", "fn") == west
    assert store.delete_function("eu-west-1", "fn") is True
    assert store.get_function("eu-west-1", "fn") is None
    assert store.get_function("us-east-1", "fn") == east


def test_create_existing_is_a_conflict(store: SqlMetadataStore) -> None:
    store.create_function(make_cfg(name="dup"))
    with pytest.raises(errors.ResourceConflictException) as caught:
        store.create_function(make_cfg(name="dup", memory_size=256))
    assert caught.value.message == "Function already exist: dup"
    assert caught.value.status == 409
    stored = store.get_function("us-east-1", "dup")
    assert stored is not None and stored.memory_size == 128


def test_put_replaces(store: SqlMetadataStore) -> None:
    cfg = make_cfg()
    store.put_function(cfg)
    updated = dataclasses.replace(cfg, memory_size=512, revision_id=new_revision_id())
    store.put_function(updated)
    assert store.get_function("us-east-1", "fn") == updated


def test_compare_and_swap(store: SqlMetadataStore) -> None:
    cfg = make_cfg()
    store.create_function(cfg)
    first = dataclasses.replace(cfg, timeout=10, revision_id=new_revision_id())
    store.put_function(first, expected_revision=cfg.revision_id)
    assert store.get_function("us-east-1", "fn") == first

    stale = dataclasses.replace(cfg, timeout=20, revision_id=new_revision_id())
    with pytest.raises(errors.PreconditionFailedException) as caught:
        store.put_function(stale, expected_revision=cfg.revision_id)
    assert caught.value.message == REVISION_MISMATCH
    assert caught.value.status == 412
    assert store.get_function("us-east-1", "fn") == first


def test_compare_and_swap_on_missing_row_fails(store: SqlMetadataStore) -> None:
    cfg = make_cfg(name="ghost")
    with pytest.raises(errors.PreconditionFailedException):
        store.put_function(cfg, expected_revision=cfg.revision_id)
    assert store.get_function("us-east-1", "ghost") is None


def test_compare_and_swap_lets_exactly_one_racer_win(store: SqlMetadataStore) -> None:
    base = make_cfg()
    store.create_function(base)
    winners: list[FunctionConfig] = []
    losers: list[FunctionConfig] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def racer(i: int) -> None:
        mine = dataclasses.replace(base, description=f"racer {i}", revision_id=new_revision_id())
        start.wait()
        try:
            store.put_function(mine, expected_revision=base.revision_id)
            outcome = winners
        except errors.PreconditionFailedException:
            outcome = losers
        with lock:
            outcome.append(mine)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert store.get_function("us-east-1", "fn") == winners[0]


def test_pagination(store: SqlMetadataStore) -> None:
    names = [f"fn-{i:02d}" for i in range(7)]
    for name in reversed(names):
        store.create_function(make_cfg(name=name))
    store.create_function(make_cfg(name="elsewhere", region="eu-west-1"))

    seen: list[str] = []
    marker: str | None = None
    pages = 0
    while True:
        page, marker = store.list_functions("us-east-1", marker, 3)
        pages += 1
        assert len(page) <= 3
        seen.extend(c.name for c in page)
        if marker is None:
            break
        assert all(n not in marker for n in names)  # opaque, not a bare name
    assert seen == names
    assert pages == 3

    everything, last = store.list_functions("us-east-1", None, 50)
    assert [c.name for c in everything] == names and last is None
    exact, after_exact = store.list_functions("us-east-1", None, 7)
    assert len(exact) == 7 and after_exact is None


def test_list_skips_published_versions(store: SqlMetadataStore) -> None:
    latest = make_cfg(name="fn")
    v1 = make_cfg(name="fn", version="1", memory_size=256)
    store.create_function(latest)
    store.create_function(v1)
    page, _ = store.list_functions("us-east-1", None, 50)
    assert page == [latest]
    assert store.get_function("us-east-1", "fn", version="1") == v1
    assert store.delete_function("us-east-1", "fn") is True  # every version goes
    assert store.get_function("us-east-1", "fn", version="1") is None
    assert store.all_functions() == []


def test_bad_marker(store: SqlMetadataStore) -> None:
    with pytest.raises(errors.InvalidParameterValueException):
        store.list_functions("us-east-1", "not a marker!", 10)


def test_all_functions(store: SqlMetadataStore) -> None:
    a = make_cfg(name="a", region="eu-west-1")
    b = make_cfg(name="b")
    store.create_function(b)
    store.create_function(a)
    assert store.all_functions() == [a, b]


def test_survives_a_new_store_on_the_same_file(db_url: str) -> None:
    first = SqlMetadataStore(db_url)
    cfg = make_cfg(state=FunctionState.ACTIVE)
    first.create_function(cfg)
    first.close()
    second = SqlMetadataStore(db_url)
    assert second.get_function("us-east-1", "fn") == cfg


def test_sqlite_runs_in_wal_with_full_sync(store: SqlMetadataStore) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_parallel_writers_and_readers(store: SqlMetadataStore) -> None:
    errors_seen: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(20):
                store.put_function(make_cfg(name=f"w{i}-{j}"))
                assert store.get_function("us-east-1", f"w{i}-{j}") is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors_seen.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors_seen == []
    assert len(store.all_functions()) == 120


def test_satisfies_the_protocol(store: SqlMetadataStore) -> None:
    typed: MetadataStore = store  # checked by mypy
    assert typed.get_function("us-east-1", "fn") is None
