"""The function lifecycle: what a change becomes once its code is ready.

After CreateFunction a function is Pending until its code (and layers) are unpacked and its
runtime's image is built (the first function of a runtime builds it), then Active, or
Failed when they cannot be. After an update, LastUpdateStatus is InProgress
until the same work is done, then Successful or Failed. Both are transition tables
(`FUNCTION_STATE`, `LAST_UPDATE`); nothing else moves these states. Settling is a
background task per change, owned by the server's supervisor; a change made meanwhile
supersedes it (its RevisionId no longer matches) and settles itself. `resume` settles
whatever the store holds half-way: after a restart, as after a start.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from lamina.control.repository import FunctionRepository
from lamina.domain.lifecycle import Lifecycle
from lamina.domain.model import FunctionConfig, FunctionState, LastUpdateStatus, new_revision_id
from lamina.errors import ApiError, ImageBuildError, PreconditionFailedException
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.store.protocols import BlobStore
from lamina.tasks import Supervisor

FUNCTION_STATE = Lifecycle("function state", {
    FunctionState.PENDING: frozenset({FunctionState.ACTIVE, FunctionState.FAILED}),
    FunctionState.ACTIVE: frozenset({FunctionState.INACTIVE, FunctionState.FAILED}),
    FunctionState.INACTIVE: frozenset({FunctionState.ACTIVE, FunctionState.FAILED}),
    FunctionState.FAILED: frozenset({FunctionState.ACTIVE}),
})
LAST_UPDATE = Lifecycle("last update status", {
    LastUpdateStatus.IN_PROGRESS: frozenset({LastUpdateStatus.SUCCESSFUL, LastUpdateStatus.FAILED}),
    LastUpdateStatus.SUCCESSFUL: frozenset({LastUpdateStatus.IN_PROGRESS}),
    LastUpdateStatus.FAILED: frozenset({LastUpdateStatus.IN_PROGRESS}),
})


def begin_update(cfg: FunctionConfig) -> FunctionConfig:
    """`cfg` (a changed $LATEST) marked as an update in progress."""
    if cfg.last_update_status is not None:  # None: never updated since its creation settled
        LAST_UPDATE.check(cfg.last_update_status, LastUpdateStatus.IN_PROGRESS, subject=cfg.arn)
    return replace(cfg, last_update_status=LastUpdateStatus.IN_PROGRESS,
                   last_update_status_reason="The function is being created.",
                   last_update_status_reason_code="Creating")


def settled(current: FunctionConfig, error: str | None, *, runtime_error: str | None = None) -> FunctionConfig:
    """What `current` becomes once its code and runtime are ready (`error` and `runtime_error`
    None), or could not be made so."""
    status = LastUpdateStatus.FAILED if error or runtime_error else LastUpdateStatus.SUCCESSFUL
    if runtime_error:
        reason: str | None = f"Lamina could not build the {current.runtime} runtime: {runtime_error}"
        reason_code: str | None = "InvalidRuntime"
    else:
        reason = f"Lamina could not prepare the code: {error}" if error else None
        reason_code = "InvalidZipFileException" if error else None
    error = error or runtime_error
    if current.state is FunctionState.PENDING:
        state = FUNCTION_STATE.check(current.state, FunctionState.FAILED if error else FunctionState.ACTIVE,
                                     subject=current.arn)
        return replace(current, state=state, state_reason=reason, state_reason_code=reason_code,
                       last_update_status=status, last_update_status_reason=None,
                       last_update_status_reason_code=None, revision_id=new_revision_id())
    assert current.last_update_status is not None
    LAST_UPDATE.check(current.last_update_status, status, subject=current.arn)
    return replace(current, last_update_status=status, last_update_status_reason=reason,
                   last_update_status_reason_code=reason_code, revision_id=new_revision_id())


class Settler:
    def __init__(self, repo: FunctionRepository, blobs: BlobStore, catalog: RuntimeCatalog,
                 supervisor: Supervisor) -> None:
        self._repo = repo
        self._blobs = blobs
        self._catalog = catalog
        self._supervisor = supervisor

    def schedule(self, cfg: FunctionConfig) -> None:
        self._supervisor.spawn(self._settle(cfg), name=f"settle {cfg.arn} {cfg.revision_id}")

    def resume(self) -> None:
        """Settle every function the store holds Pending or InProgress."""
        for cfg in self._repo.all_latest():
            if cfg.state is FunctionState.PENDING or cfg.last_update_status is LastUpdateStatus.IN_PROGRESS:
                self.schedule(cfg)

    async def _settle(self, cfg: FunctionConfig) -> None:
        loop = asyncio.get_running_loop()
        error = runtime_error = None
        try:
            await loop.run_in_executor(None, self._prepare, cfg)
        except (ApiError, OSError, KeyError) as exc:
            # the package cannot be unpacked (or its blob is gone): the function fails, as
            # on AWS; any other exception is a bug and goes to the supervisor
            error = str(exc) or type(exc).__name__
        if error is None and cfg.runtime and self._catalog.plan(cfg.runtime) is not None:
            try:  # its image, built on first use: the function stays Pending meanwhile
                await loop.run_in_executor(None, self._catalog.prepare, cfg.runtime)
            except ImageBuildError as exc:
                runtime_error = str(exc)
            else:  # its Python compiled once, here, rather than at every cold start
                await loop.run_in_executor(None, self._compile, cfg)
        current = self._repo.latest(cfg.key)
        if current is None or current.revision_id != cfg.revision_id:
            return  # deleted or changed again meanwhile; the newer change settles itself
        with contextlib.suppress(PreconditionFailedException):  # changed meanwhile: that change settles itself
            await self._repo.save(current, settled(current, error, runtime_error=runtime_error))

    def _compile(self, cfg: FunctionConfig) -> None:
        assert cfg.runtime is not None
        trees = [(self._blobs.extracted(cfg.code.blob_key), "/var/task")]
        if cfg.layers:
            trees.append((self._blobs.merged([layer.code.blob_key for layer in cfg.layers]), "/opt"))
        self._catalog.compile(cfg.runtime, trees)

    def _prepare(self, cfg: FunctionConfig) -> None:
        self._blobs.extracted(cfg.code.blob_key)
        if cfg.layers:  # merged now, as AWS readies a function's layers before it is Active
            self._blobs.merged([layer.code.blob_key for layer in cfg.layers])
