"""Wiring: `create_app(settings)` builds every part once and hands each its collaborators."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from lamina.api.app import LambdaApi
from lamina.api.codeurl import CodeUrls
from lamina.api.handlers import Services
from lamina.control.aliases import AliasService
from lamina.control.code import CodeStore
from lamina.control.concurrency import ConcurrencyService
from lamina.control.event_config import EventInvokeConfigService
from lamina.control.functions import FunctionService
from lamina.control.layers import LayerService
from lamina.control.policies import LayerPolicyService, PolicyService
from lamina.control.publishing import PublishingService
from lamina.control.repository import FunctionRepository
from lamina.control.runtime_management import RuntimeManagementService
from lamina.control.settling import Settler
from lamina.control.tags import TagService
from lamina.domain.model import FunctionConfig, UpdateRuntimeOn
from lamina.invoke.async_queue import AsyncQueue
from lamina.invoke.invoker import Invoker
from lamina.observe.logs import MB, LogSink
from lamina.runtimes import lifecycle
from lamina.runtimes.bytecode import BytecodeCache
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.runtimes.images import ImageStore
from lamina.sandbox.backend import LinuxSandboxes
from lamina.store.blobs import FileBlobStore
from lamina.store.events import SqlEventStore
from lamina.store.metadata import SqlMetadataStore
from lamina.store.secrets import EnvelopeCipher, load_or_create_key
from lamina.tasks import Supervisor

log = logging.getLogger("lamina")


def _secret(data_dir: Path) -> bytes:
    path = data_dir / "secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def create_app(settings: Any) -> LambdaApi:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    code_secret = _secret(data_dir)
    cipher = EnvelopeCipher(load_or_create_key(data_dir / "env.key", settings.env_key))
    store = SqlMetadataStore(f"sqlite:///{data_dir / 'lamina.db'}", cipher)
    blobs = FileBlobStore(data_dir / "blobs", unpack_as=(settings.sandbox_uid, settings.sandbox_gid))
    images = ImageStore(settings.effective_runtimes_dir, mirror=settings.debian_mirror) \
        if settings.runtime_images else None
    bytecode = BytecodeCache(data_dir / "bytecode", uid=settings.sandbox_uid, gid=settings.sandbox_gid)
    catalog = RuntimeCatalog(images, fallback=settings.runtime_fallback, bytecode=bytecode)
    logs = LogSink(data_dir, max_bytes=settings.log_max_mb * MB)
    supervisor = Supervisor()
    invoker = Invoker(settings, catalog, logs, LinuxSandboxes(settings, supervisor), supervisor,
                      code_dir=lambda cfg: blobs.extracted(cfg.code.blob_key),
                      opt_dir=lambda cfg: blobs.merged([layer.code.blob_key for layer in cfg.layers]))
    repo = FunctionRepository(store)
    code = CodeStore(blobs)
    layers = LayerService(store, code, repo.run)
    settler = Settler(repo, blobs, catalog, supervisor)
    functions = FunctionService(repo, code, catalog, settler, today=_lifecycle_date(settings),
                                image_digest=catalog.image_digest)
    concurrency = ConcurrencyService(functions, limit=settings.effective_concurrency_limit,
                                     min_unreserved=settings.effective_min_unreserved, provision=invoker.provision)

    def follow(before: FunctionConfig | None, after: FunctionConfig | None) -> None:
        """The invoker follows the store: generations, reservations, deletions."""
        if after is None:
            assert before is not None
            if before.published:
                invoker.version_deleted(before)
            else:
                invoker.function_deleted(before.account_id, before.region, before.name)
        elif not after.published:
            invoker.function_changed(after)
        concurrency.follow(before, after)

    repo.subscribe(follow)
    event_config = EventInvokeConfigService(functions, sqs_enabled=settings.sqs_endpoint is not None)
    events = AsyncQueue(settings, SqlEventStore(store.engine), functions, event_config, invoker, supervisor)

    code_urls = CodeUrls(code_secret, settings.base_url, settings.code_url_expires)
    services = Services(settings=settings, functions=functions, publishing=PublishingService(functions),
                        tags=TagService(functions), concurrency=concurrency, aliases=AliasService(functions),
                        layers=layers, policies=PolicyService(functions), layer_policies=LayerPolicyService(layers),
                        invoker=invoker, event_config=event_config, events=events, code_urls=code_urls,
                        runtime_management=RuntimeManagementService(functions),
                        blob=blobs.get)

    async def startup() -> None:
        await invoker.start()
        await repo.rebuild()  # the same path as any later change: the invoker hears of every function
        versions = [*repo.all_latest(), *repo.all_published()]
        pins = [(cfg.runtime, cfg.region, cfg.runtime_version_arn) for cfg in versions
                if cfg.runtime and cfg.runtime_version_arn and cfg.runtime_update_on is not UpdateRuntimeOn.AUTO]
        supervisor.spawn(_prune_runtimes(catalog, pins), name="prune runtime images")
        settler.resume()
        # logs of functions deleted while an older Lamina (which kept them) ran
        await asyncio.get_running_loop().run_in_executor(
            None, logs.sweep, {(cfg.region, cfg.name) for cfg in functions.all()})
        await events.start()
        log.info("Lamina ready on %s (data dir %s; runtimes: %s)", settings.base_url, data_dir,
                 ", ".join(catalog.names))

    async def shutdown() -> None:
        await events.close()
        await invoker.close()  # starts the last reaps, which the supervisor then waits for (bounded)
        await supervisor.close()
        logs.close()
        repo.close()
        store.close()
        blobs.close()
        await asyncio.sleep(0)

    return LambdaApi(services, on_startup=startup, on_shutdown=shutdown,
                     status=lambda: _status(invoker, events), runtimes=catalog.describe, supervisor=supervisor)


def _lifecycle_date(settings: Any) -> Callable[[], date]:
    """The date runtime lifecycle rules are judged on: the configured one, else today (UTC)."""
    fixed: date | None = settings.runtime_lifecycle_date
    return lifecycle.today if fixed is None else (lambda: fixed)


async def _prune_runtimes(catalog: RuntimeCatalog, pins: list[tuple[str, str, str]]) -> None:
    """Delete outdated images, but those function versions are pinned to (Manual, or
    FunctionUpdate since their last update)."""
    try:
        removed = await asyncio.to_thread(catalog.prune, pins)
    except OSError as exc:  # clean-up only: the server serves without it
        log.warning("could not remove outdated runtime images: %s", exc)
        return
    log.info("runtime images checked: %d removed (no recipe names them and no function version is pinned to them)",
             removed)


def _status(invoker: Invoker, events: AsyncQueue) -> dict[str, Any]:
    """The invoker's view per function, with the asynchronous queue's counters under "async"."""
    status = invoker.status()
    queue = events.status()
    for key, counters in queue["functions"].items():
        status["functions"].setdefault(key, {})["async"] = counters
    status["async"] = {"sqs_pending": queue["sqs_pending"], "sqs_sent": queue["sqs_sent"]}
    return status
