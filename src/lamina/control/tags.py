"""Tags on functions (not on versions or aliases, as on AWS), at most 50 of them."""

from __future__ import annotations

from dataclasses import replace

from lamina.control.functions import FunctionService
from lamina.control.rules import check_tag_count
from lamina.domain.model import FunctionConfig
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException


class TagService:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    async def tag(self, ref: FunctionRef, tags: dict[str, str]) -> None:
        latest = self._target(ref)
        merged = {**latest.tags, **tags}
        check_tag_count(merged)
        await self._functions.save_latest(latest, replace(latest, tags=merged))

    async def untag(self, ref: FunctionRef, keys: list[str]) -> None:
        latest = self._target(ref)
        await self._functions.save_latest(
            latest, replace(latest, tags={k: v for k, v in latest.tags.items() if k not in keys}))

    def tags(self, ref: FunctionRef) -> dict[str, str]:
        return dict(self._target(ref).tags)

    def _target(self, ref: FunctionRef) -> FunctionConfig:
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a function ARN.")
        return self._functions.latest(ref)
