"""Functions as the store holds them, cached in memory for the invoke path.

The store is the source of truth and decides every write: a creation conflict is its
unique key, a RevisionId precondition its compare-and-swap, a list page its query. Memory
holds a complete copy of the function rows (each $LATEST and published version) that the
store returned or accepted, so that an invoke resolves its function without touching the
database; `rebuild` re-reads everything, and start-up is nothing but a rebuild of an
empty cache. Every change of a cached row, whether this process wrote it or a rebuild
found it, is told to the listeners as `(before, after)` (None for absent), in the order
the changes happened: the invoker and provisioned concurrency follow the store that way.

Writes run off the event loop (a durable SQLite commit waits for the disk) on one
thread, in submission order; their effect on the cache and the listeners happens back on
the loop once the store has accepted them. A write the store refuses changes nothing here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lamina.domain.model import LATEST, FunctionConfig, FunctionKey
from lamina.errors import PreconditionFailedException
from lamina.store.protocols import MetadataStore

T = TypeVar("T")
Listener = Callable[[FunctionConfig | None, FunctionConfig | None], None]


class FunctionRepository:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self._latest: dict[FunctionKey, FunctionConfig] = {}
        self._versions: dict[FunctionKey, dict[str, FunctionConfig]] = {}
        self._listeners: list[Listener] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-store")

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking store work on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, work, *args)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    # -- the cache -------------------------------------------------------------------------
    async def rebuild(self) -> None:
        """Make memory what the store holds, telling the listeners what that changed."""
        rows = await self.run(self.store.all_functions)
        found = {(cfg.key, cfg.version): cfg for cfg in rows}
        cached = {(key, LATEST): cfg for key, cfg in self._latest.items()}
        cached.update({(key, v): cfg for key, versions in self._versions.items() for v, cfg in versions.items()})
        # $LATEST first, so that a listener hears of a function before its versions
        for place in sorted(found.keys() | cached.keys(), key=lambda p: (p[0], p[1] != LATEST)):
            before, after = cached.get(place), found.get(place)
            if before != after:
                self._apply(before, after)

    def _apply(self, before: FunctionConfig | None, after: FunctionConfig | None) -> None:
        cfg = after or before
        assert cfg is not None
        if cfg.published:
            if after is not None:
                self._versions.setdefault(cfg.key, {})[cfg.version] = after
            elif cfg.key not in self._latest:
                return  # went with its function, whose listeners heard of it
            else:
                self._versions.get(cfg.key, {}).pop(cfg.version, None)
        elif after is None:
            self._latest.pop(cfg.key, None)
            self._versions.pop(cfg.key, None)
        else:
            self._latest[cfg.key] = after
        for listener in self._listeners:
            listener(before, after)

    # -- reads (memory) ---------------------------------------------------------------------
    def latest(self, key: FunctionKey) -> FunctionConfig | None:
        return self._latest.get(key)

    def version(self, key: FunctionKey, version: str) -> FunctionConfig | None:
        if version == LATEST:
            return self._latest.get(key)
        return self._versions.get(key, {}).get(version)

    def published(self, key: FunctionKey) -> list[FunctionConfig]:
        """The published versions, oldest first."""
        return sorted(self._versions.get(key, {}).values(), key=lambda c: int(c.version))

    def all_latest(self) -> list[FunctionConfig]:
        return list(self._latest.values())

    def all_published(self) -> list[FunctionConfig]:
        return [cfg for versions in self._versions.values() for cfg in versions.values()]

    # -- reads (the store: what decides across functions) -----------------------------------
    async def page(self, account_id: str, region: str, marker: str | None,
                   max_items: int) -> tuple[list[FunctionConfig], str | None]:
        return await self.run(lambda: self.store.list_functions(region, marker, max_items, account_id=account_id))

    async def account_latest(self, account_id: str) -> list[FunctionConfig]:
        return await self.run(self.store.latest_functions, account_id)

    # -- writes: the store first ------------------------------------------------------------
    async def create(self, cfg: FunctionConfig) -> None:
        await self.run(self.store.create_function, cfg)
        self._apply(None, cfg)

    async def save(self, before: FunctionConfig | None, after: FunctionConfig) -> None:
        """Store `after`; with `before`, only if the stored row is still `before` (its
        RevisionId), else PreconditionFailedException and the cache re-reads that row."""
        expected = before.revision_id if before is not None else None
        try:
            await self.run(lambda: self.store.put_function(after, expected_revision=expected))
        except PreconditionFailedException:
            await self.refresh(after.key, after.version)
            raise
        self._apply(self.version(after.key, after.version), after)

    async def delete_version(self, cfg: FunctionConfig) -> None:
        await self.run(lambda: self.store.delete_version(cfg.region, cfg.name, cfg.version,
                                                         account_id=cfg.account_id))
        self._apply(self.version(cfg.key, cfg.version), None)

    async def delete_function(self, latest: FunctionConfig) -> None:
        await self.run(lambda: self.store.delete_function(latest.region, latest.name, account_id=latest.account_id))
        self._apply(self._latest.get(latest.key, latest), None)

    async def refresh(self, key: FunctionKey, version: str) -> None:
        """Re-read one row from the store into the cache (after the store refused a write
        made against what the cache held)."""
        stored = await self.run(lambda: self.store.get_function(key.region, key.name, version=version,
                                                                account_id=key.account_id))
        cached = self.version(key, version)
        if stored != cached:
            if cached is None and stored is None:
                return
            self._apply(cached, stored)
