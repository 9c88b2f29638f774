"""FunctionRepository: the store decides, memory follows, listeners hear every change.

Two repositories on one database stand for two front ends (the cluster mode the design
plans): what one writes, the other finds by rebuilding, and the store refuses the
write that was made against what it no longer holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lamina.control.repository import FunctionRepository
from lamina.domain.model import CodeRef, FunctionConfig, FunctionKey, new_revision_id
from lamina.errors import PreconditionFailedException, ResourceConflictException
from lamina.store.metadata import SqlMetadataStore

Change = tuple[str | None, str | None]  # (before, after) as "name:version@revision"


def config(name: str, **changes: object) -> FunctionConfig:
    cfg = FunctionConfig(region="us-east-1", account_id="000000000000", name=name, runtime="python3.11",
                         handler="app.handler", role="arn:aws:iam::000000000000:role/r",
                         code=CodeRef("0" * 64, "sha", 1, 1))
    return replace(cfg, **changes)  # type: ignore[arg-type]


def label(cfg: FunctionConfig | None) -> str | None:
    return None if cfg is None else f"{cfg.name}:{cfg.version}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    db = SqlMetadataStore(f"sqlite:///{tmp_path / 'lamina.db'}")
    yield db
    db.close()


def repository(store: SqlMetadataStore, heard: list[Change]) -> FunctionRepository:
    repo = FunctionRepository(store)
    repo.subscribe(lambda before, after: heard.append((label(before), label(after))))
    return repo


def test_rebuild_tells_of_every_function_then_of_nothing_new(store: SqlMetadataStore) -> None:
    store.create_function(config("b"))
    store.create_function(config("a"))
    store.put_function(config("a", version="1"))
    heard: list[Change] = []
    repo = repository(store, heard)

    async def main() -> None:
        await repo.rebuild()
        assert heard == [(None, "a:$LATEST"), (None, "a:1"), (None, "b:$LATEST")]
        heard.clear()
        await repo.rebuild()
        assert heard == []

    asyncio.run(main())
    assert [c.name for c in repo.all_latest()] == ["a", "b"]
    assert [c.version for c in repo.published(FunctionKey("000000000000", "us-east-1", "a"))] == ["1"]


def test_what_one_front_end_writes_the_other_finds(store: SqlMetadataStore) -> None:
    heard_a: list[Change] = []
    heard_b: list[Change] = []
    a, b = repository(store, heard_a), repository(store, heard_b)

    async def main() -> None:
        await a.create(config("fn"))
        await b.rebuild()
        seen_by_b = b.latest(FunctionKey("000000000000", "us-east-1", "fn"))
        assert seen_by_b == a.latest(FunctionKey("000000000000", "us-east-1", "fn"))
        assert seen_by_b is not None
        with pytest.raises(ResourceConflictException):
            await b.create(config("fn"))  # the store's key decides, not b's cache
        changed = replace(seen_by_b, memory_size=256, revision_id=new_revision_id())
        await a.save(seen_by_b, changed)
        # b writes against what it cached, which the store no longer holds
        with pytest.raises(PreconditionFailedException):
            await b.save(seen_by_b, replace(seen_by_b, timeout=9))
        # refused: b's cache now holds the store's row, and b's listeners heard of it
        assert b.latest(FunctionKey("000000000000", "us-east-1", "fn")) == changed
        assert heard_b[-1] == ("fn:$LATEST", "fn:$LATEST")

    asyncio.run(main())


def test_deleting_a_function_takes_its_versions_and_is_told_once(store: SqlMetadataStore) -> None:
    heard: list[Change] = []
    repo = repository(store, heard)
    key = FunctionKey("000000000000", "us-east-1", "fn")

    async def main() -> None:
        latest = config("fn")
        await repo.create(latest)
        await repo.save(None, config("fn", version="1"))
        heard.clear()
        await repo.delete_function(latest)
        assert heard == [("fn:$LATEST", None)]
        assert repo.latest(key) is None and repo.published(key) == []
        await repo.rebuild()  # nothing left in the store either
        assert heard == [("fn:$LATEST", None)]

    asyncio.run(main())
    assert store.function_versions("000000000000", "us-east-1", "fn") == []
