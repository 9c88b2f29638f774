"""Asynchronous invocation settings: Put/Get/Update/Delete/ListFunctionEventInvokeConfigs
and the function's DeadLetterConfig, validated as AWS validates them.

Settings live on $LATEST keyed by the qualifier they were put on ($LATEST, a published
version or an alias); an invoke uses the settings of the qualifier it named.
"""

from __future__ import annotations

import time
from dataclasses import replace

from lamina.control.functions import FunctionService
from lamina.domain.arns import parse_arn
from lamina.domain.model import LATEST, EventInvokeSetting, FunctionConfig
from lamina.domain.names import FunctionRef
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException

DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE = 21600
_UNSET = object()
# services Lamina delivers records to
DELIVERABLE = ("lambda", "sqs")
KNOWN_DESTINATION_SERVICES = ("lambda", "sqs", "sns", "events", "s3")


def _function_missing() -> ResourceNotFoundException:
    return ResourceNotFoundException("The function doesn't exist.")


def _no_config(ref: FunctionRef) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The function {ref.unqualified_arn}:{ref.qualifier or LATEST} doesn't have an EventInvokeConfig")


def arn_service(arn: str) -> str:
    parsed = parse_arn(arn)
    return parsed.service if parsed is not None else ""


class EventInvokeConfigService:
    def __init__(self, functions: FunctionService, *, sqs_enabled: bool) -> None:
        self._functions = functions
        self._sqs_enabled = sqs_enabled

    # -- reads ----------------------------------------------------------------------------
    def get(self, ref: FunctionRef) -> tuple[str, EventInvokeSetting]:
        """(qualified ARN, setting) or AWS's 404 naming the qualifier."""
        try:
            latest = self._functions.latest(ref)
        except ResourceNotFoundException:
            raise _no_config(ref) from None
        setting = latest.event_invoke.get(ref.qualifier or LATEST)
        if setting is None:
            raise _no_config(ref)
        return f"{latest.arn}:{ref.qualifier or LATEST}", setting

    def list(self, ref: FunctionRef) -> list[tuple[str, EventInvokeSetting]]:
        try:
            latest = self._functions.latest(ref)
        except ResourceNotFoundException:
            raise _function_missing() from None
        return [(f"{latest.arn}:{q}", s) for q, s in sorted(latest.event_invoke.items(), key=lambda i: _order(i[0]))]

    def effective(self, latest: FunctionConfig, qualifier: str | None) -> EventInvokeSetting | None:
        return latest.event_invoke.get(qualifier or LATEST)

    # -- writes ---------------------------------------------------------------------------
    async def put(self, ref: FunctionRef, *, retries: int | None, max_age: int | None,
            destinations: dict[str, dict[str, str]] | None) -> tuple[str, EventInvokeSetting]:
        if retries is None and max_age is None and destinations is None:
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting.")
        latest, qualifier = self._target(ref)
        on_success, on_failure = self._destinations(latest, destinations)
        setting = EventInvokeSetting(last_modified=time.time(), maximum_retry_attempts=retries,
                                     maximum_event_age=max_age, on_success=on_success, on_failure=on_failure)
        await self._save(latest, qualifier, setting)
        return f"{latest.arn}:{qualifier}", setting

    async def update(self, ref: FunctionRef, *, retries: int | None, max_age: int | None,
               destinations: dict[str, dict[str, str]] | None) -> tuple[str, EventInvokeSetting]:
        if retries is None and max_age is None and destinations is None:
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting.")
        latest, qualifier = self._target(ref)
        current = latest.event_invoke.get(qualifier)
        if current is None:
            raise _no_config(FunctionRef(ref.account_id, ref.region, ref.name, qualifier))
        changes: dict[str, object] = {"last_modified": time.time()}
        if retries is not None:
            changes["maximum_retry_attempts"] = retries
        if max_age is not None:
            changes["maximum_event_age"] = max_age
        if destinations is not None:
            on_success, on_failure = self._destinations(latest, destinations)
            if "OnSuccess" in destinations:
                changes["on_success"] = on_success
            if "OnFailure" in destinations:
                changes["on_failure"] = on_failure
        setting = replace(current, **changes)  # type: ignore[arg-type]
        await self._save(latest, qualifier, setting)
        return f"{latest.arn}:{qualifier}", setting

    async def delete(self, ref: FunctionRef) -> None:
        try:
            latest = self._functions.latest(ref)
        except ResourceNotFoundException:
            raise _no_config(ref) from None
        qualifier = ref.qualifier or LATEST
        if qualifier not in latest.event_invoke:
            raise _no_config(ref)
        await self._functions.save_latest(latest, replace(
            latest, event_invoke={q: s for q, s in latest.event_invoke.items() if q != qualifier}))

    def check_dead_letter(self, target: str | None) -> str | None:
        """DeadLetterConfig.TargetArn: "" removes it; SQS queues are delivered to."""
        if not target:
            return None
        service = arn_service(target)
        if service == "sqs":
            self._require_sqs()
            return target
        if service == "sns":
            raise InvalidParameterValueException(
                "Lamina cannot deliver to SNS topics yet; use an SQS queue as the dead-letter queue.")
        raise InvalidParameterValueException(
            f"The provided target arn {target} is invalid: a dead-letter queue must be an SQS queue or SNS topic.")

    # -- rules ----------------------------------------------------------------------------
    def _target(self, ref: FunctionRef) -> tuple[FunctionConfig, str]:
        try:
            latest = self._functions.latest(ref)
            self._functions.get(ref)  # the version or alias must exist
        except ResourceNotFoundException:
            raise _function_missing() from None
        return latest, ref.qualifier or LATEST

    def _destinations(self, latest: FunctionConfig,
                      config: dict[str, dict[str, str]] | None) -> tuple[str | None, str | None]:
        config = config or {}
        success = (config.get("OnSuccess") or {}).get("Destination") or None
        failure = (config.get("OnFailure") or {}).get("Destination") or None
        for arn in (success, failure):
            if arn is None:
                continue
            service = arn_service(arn)
            if service not in KNOWN_DESTINATION_SERVICES:
                raise InvalidParameterValueException(
                    f"The provided destination config DestinationConfig(onSuccess={_render(success, 'OnSuccess')}, "
                    f"onFailure={_render(failure, 'OnFailure')}) is invalid.")
            if service == "lambda":
                self._check_function_destination(latest, arn)
            elif service == "sqs":
                self._require_sqs()
            else:
                raise InvalidParameterValueException(
                    f"Lamina cannot deliver to {service} destinations yet; use a Lamina function or an SQS queue.")
        return success, failure

    def _check_function_destination(self, latest: FunctionConfig, arn: str) -> None:
        parsed = parse_arn(arn)
        if parsed is None or parsed.resource_type != "function" or parsed.name is None:
            raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.")
        name, qualifier = parsed.name, parsed.qualifier
        if name == latest.name and parsed.account == latest.account_id and parsed.region == latest.region:
            raise InvalidParameterValueException("You can't specify the function as a destination for itself.")
        try:
            self._functions.get(FunctionRef(parsed.account, parsed.region, name, qualifier))
        except ResourceNotFoundException:
            raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.") from None

    def _require_sqs(self) -> None:
        if not self._sqs_enabled:
            raise InvalidParameterValueException(
                "Lamina has no SQS endpoint to deliver to: start it with LAMINA_SQS_ENDPOINT set to an "
                "SQS-compatible endpoint.")

    async def _save(self, latest: FunctionConfig, qualifier: str, setting: EventInvokeSetting) -> None:
        updated = replace(latest, event_invoke={**latest.event_invoke, qualifier: setting})
        await self._functions.save_latest(latest, updated)


def _render(arn: str | None, kind: str) -> str:
    return "null" if arn is None else f"{kind}(destination={arn})"


def _order(qualifier: str) -> tuple[int, int, str]:
    """$LATEST, then versions by number, then aliases by name."""
    if qualifier == LATEST:
        return (0, 0, "")
    if qualifier.isdigit():
        return (1, int(qualifier), "")
    return (2, 0, qualifier)
