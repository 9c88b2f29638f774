"""Publishing: $LATEST snapshotted as the next numbered version, which never changes.

Numbers come from $LATEST's `version_counter`, bumped with a compare-and-swap on $LATEST,
so two publishers never take one number and numbers are never reused. Publishing
unchanged code and settings returns the newest version instead of a new one, as AWS does.
"""

from __future__ import annotations

from dataclasses import replace

from lamina.control.functions import FunctionService, key_of
from lamina.domain.messages import revision_mismatch
from lamina.domain.model import FunctionConfig, FunctionState, LastUpdateStatus, aws_timestamp, new_revision_id
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException, PreconditionFailedException


def _publishable(cfg: FunctionConfig) -> tuple[object, ...]:
    """What makes two configurations the same version: code and run-time settings."""
    return (cfg.code.blob_key, cfg.runtime, cfg.handler, cfg.role, cfg.timeout, cfg.memory_size,
            cfg.ephemeral_storage, tuple(sorted(cfg.environment.items())), cfg.architectures, cfg.tracing_mode,
            cfg.layers, cfg.dead_letter_arn)


class PublishingService:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    async def publish(self, ref: FunctionRef, *, code_sha256: str | None, revision_id: str | None,
                      description: str | None) -> FunctionConfig:
        latest = self._functions.updatable(FunctionRef(ref.account_id, ref.region, ref.name, None), None)
        if code_sha256 is not None and code_sha256 != latest.code.sha256_b64:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.code.sha256_b64}). Please try again with the CodeSHA256 in $LATEST.")
        if revision_id is not None and revision_id != latest.revision_id:
            raise PreconditionFailedException(revision_mismatch())
        published = self._functions.repo.published(key_of(ref))
        if published and _publishable(published[-1]) == _publishable(latest):
            return published[-1]
        number = latest.version_counter + 1
        bumped = replace(latest, version_counter=number, revision_id=new_revision_id())
        await self._functions.save_latest(latest, bumped)  # takes the number, or fails if $LATEST moved
        version = replace(latest, version=str(number), description=description or latest.description,
                          state=FunctionState.ACTIVE, state_reason=None, state_reason_code=None,
                          last_update_status=LastUpdateStatus.SUCCESSFUL, last_update_status_reason=None,
                          last_update_status_reason_code=None, last_modified=aws_timestamp(),
                          revision_id=new_revision_id(), reserved_concurrency=None)
        await self._functions.repo.save(None, version)
        return version
