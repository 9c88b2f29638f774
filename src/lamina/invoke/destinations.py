"""What asynchronous invocations send to their destinations, and the SQS peer they send it to.

An invocation record is the document Lambda sends to an OnSuccess/OnFailure destination;
a dead-letter message is the original event with `RequestID`, `ErrorCode` and
`ErrorMessage` attributes. SQS queues are reached through an SQS-compatible endpoint
(`LAMINA_SQS_ENDPOINT`) with botocore; credentials come from the usual AWS chain. Whatever
keeps a message from being sent (the peer refused it, could not be reached, or the target
is not a queue) is raised as `DeliveryError`, here and nowhere else.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lamina.domain.arns import parse_arn
from lamina.errors import LaminaError
from lamina.jsondepth import nests_deeper_than

# Deeper payloads are kept as text: parsing them and encoding the record again must not
# reach Python's recursion limit (a function's response is as hostile as any input).
MAX_RECORD_DEPTH = 500


class DeliveryError(LaminaError):
    """A message could not be sent to its destination (the cause is attached)."""


def _json_or_text(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")
    if nests_deeper_than(text, MAX_RECORD_DEPTH):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _timestamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def result_document(status: int, executed_version: str, function_error: str | None,
                    payload: bytes) -> dict[str, Any]:
    """An attempt's response as the queue keeps it (payload as text: responses are JSON)."""
    return {"statusCode": status, "executedVersion": executed_version, "functionError": function_error,
            "payload": payload.decode("utf-8", "replace")}


def invocation_record(*, request_id: str, function_arn: str, condition: str, invoke_count: int,
                      request_payload: bytes, result: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """Lambda's destination record. `condition`: Success, RetriesExhausted or EventAgeExceeded;
    `result`: the last attempt's `result_document` (None when the function never ran)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": _timestamp(now),
        "requestContext": {"requestId": request_id, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": invoke_count},
        "requestPayload": _json_or_text(request_payload),
    }
    if result is not None:
        context: dict[str, Any] = {"statusCode": result["statusCode"], "executedVersion": result["executedVersion"]}
        if result.get("functionError"):
            context["functionError"] = result["functionError"]
        record["responseContext"] = context
        record["responsePayload"] = _json_or_text(result["payload"].encode())
    return record


def dead_letter_attributes(request_id: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """SQS message attributes of a dead-letter message."""
    if result is None:  # never ran: throttled until the event expired
        code, message = "429", "Rate Exceeded."
    else:
        code = str(result["statusCode"])
        body = _json_or_text(result["payload"].encode())
        found = body.get("errorMessage") if isinstance(body, dict) else None
        message = str(found if found is not None else result.get("functionError") or "")
    return {
        "RequestID": {"DataType": "String", "StringValue": request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": code},
        "ErrorMessage": {"DataType": "String", "StringValue": message or "Unhandled"},
    }


class SqsSender:
    """Sends messages to SQS queues named by ARN. Thread-safe; calls block (run them off
    the event loop)."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._session = botocore.session.get_session()
        self._clients: dict[str, Any] = {}
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                credentials = self._session.get_credentials()
                keys = {} if credentials is not None else {
                    # an SQS-compatible server that does not check signatures still wants some
                    "aws_access_key_id": "lamina", "aws_secret_access_key": "lamina"}
                client = self._clients[region] = self._session.create_client(
                    "sqs", region_name=region, endpoint_url=self._endpoint,
                    config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=20), **keys)
            return client

    def send(self, queue_arn: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        arn = parse_arn(queue_arn)
        if arn is None:
            raise DeliveryError(f"not a queue ARN: {queue_arn}")
        try:
            self._send(arn.region, arn.account, arn.resource[0], queue_arn, body, attributes)
        except (BotoCoreError, ClientError) as exc:  # botocore's: every network and API failure
            raise DeliveryError(str(exc)) from exc

    def _send(self, region: str, account: str, name: str, queue_arn: str, body: str,
              attributes: dict[str, Any] | None) -> None:
        client = self._client(region)
        url = self._urls.get(queue_arn)
        if url is None:
            url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self._urls[queue_arn] = url
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        client.send_message(**kwargs)
