"""The HTTP edge: a plain ASGI application.

Per request: read the body (bounded), verify SigV4, route by botocore's model, parse and
validate, call one handler, serialise. Errors of type `ApiError` are rendered as AWS
renders them; anything else becomes a 500 ServiceException and is logged.
`/_lamina/…` holds Lamina's own endpoints. Who may use them:

- `/_lamina/health`: anyone (it says only that the server is up);
- `/_lamina/code/…`: whoever holds a download URL GetFunction or GetLayerVersion issued, until
  it expires or its owner lets go of the code (`codeurl`), like an S3 presigned URL;
- every other `/_lamina/` path (status, …): SigV4-signed requests, verified as API requests
  are; unsigned GETs from loopback clients too if `LAMINA_STATUS_UNSIGNED=loopback`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from lamina.api import codeurl
from lamina.api.handlers import HANDLERS, RequestContext, Services, current_code
from lamina.api.limits import MAX_INVOKE_BYTES, MAX_REQUEST_BYTES, too_large
from lamina.api.model import LambdaModel
from lamina.api.sigv4 import SigV4Verifier
from lamina.errors import ApiError, ServiceException, UnknownOperationException
from lamina.tasks import Supervisor

log = logging.getLogger("lamina.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

INVOKE_SUFFIX = "/invocations"
HEALTH_PATH = "/_lamina/health"
INTERNAL_PREFIX = "/_lamina/"


class _ClientGone(Exception):
    """The client disconnected before its request was complete: nothing to answer."""


class LambdaApi:
    def __init__(self, services: Services, *,
                 on_startup: Callable[[], Awaitable[None]], on_shutdown: Callable[[], Awaitable[None]],
                 status: Callable[[], dict[str, Any]], runtimes: Callable[[], list[dict[str, object]]],
                 supervisor: Supervisor) -> None:
        self.supervisor = supervisor  # owns the background tasks; the CLI stops the server on a crash
        self._services = services
        self._model = LambdaModel()
        self._verifier = SigV4Verifier(services.settings.credentials)
        self._unsigned_loopback = services.settings.status_unsigned == "loopback"
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._status = status
        self._runtimes = runtimes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._on_startup()
                except Exception as exc:
                    # a boundary: whatever stopped start-up is reported to uvicorn, which exits
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        if path == HEALTH_PATH:
            await _respond(send, 200, [("content-type", "application/json")], b'{"status":"ok"}')
            return
        if path.startswith(codeurl.CODE_PATH):
            await self._code(scope, path, send)
            return
        request_id = str(uuid.uuid4())
        try:
            if path.startswith(INTERNAL_PREFIX):
                status, headers, body = await self._internal(scope, path, receive)
            else:
                status, headers, body = await self._api(scope, path, receive, request_id)
        except _ClientGone:
            return
        except ApiError as err:
            status, headers, body = self._model.render_error(err)
        except Exception:
            # the 500 boundary: a bug below answers ServiceException (as AWS's own faults do)
            # and is logged, instead of dropping the connection
            log.exception("unhandled error serving %s %s", scope["method"], path)
            status, headers, body = self._model.render_error(ServiceException("Internal error"))
        headers.append(("x-amzn-requestid", request_id))
        await _respond(send, status, headers, body)

    async def _api(self, scope: Scope, path: str, receive: Receive,
                   request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        headers, query_string, body = await _read_request(scope, path, receive)
        caller = self._verifier.verify(scope["method"], path, query_string, headers, body)
        matched = self._model.match(scope["method"], path, query_string)
        if matched is None:
            raise UnknownOperationException("Unknown operation")
        op, path_params = matched
        handler = HANDLERS.get(op.name)
        if handler is None:
            raise UnknownOperationException(f"Operation {op.name} is not supported by Lamina yet")
        params = self._model.parse(op, path_params, parse_qsl(query_string, keep_blank_values=True), headers, body)
        ctx = RequestContext(region=caller.region, account_id=self._services.settings.account_id,
                             request_id=request_id)
        output = await handler(self._services, ctx, params)
        return self._model.serialize(op, output)

    async def _internal(self, scope: Scope, path: str,
                        receive: Receive) -> tuple[int, list[tuple[str, str]], bytes]:
        """Lamina's own endpoints, signed like API requests (see the module's docstring)."""
        headers, query_string, body = await _read_request(scope, path, receive)
        unsigned = "authorization" not in headers and "X-Amz-Algorithm=" not in query_string
        if not (unsigned and self._unsigned_loopback and scope["method"] in ("GET", "HEAD")
                and _is_loopback(scope.get("client"))):
            self._verifier.verify(scope["method"], path, query_string, headers, body)
        if path == "/_lamina/status":
            return 200, [("content-type", "application/json")], json.dumps(self._status()).encode()
        if path == "/_lamina/runtimes":
            runtimes = await asyncio.to_thread(self._runtimes)
            return 200, [("content-type", "application/json")], json.dumps({"Runtimes": runtimes}).encode()
        raise UnknownOperationException("Unknown operation")

    async def _code(self, scope: Scope, path: str, send: Send) -> None:
        """A code download: authorised by the URL's own signature, answered as S3 answers."""
        request_id = codeurl.request_id()
        blob_key = unquote(path[len(codeurl.CODE_PATH):])
        try:
            grant = self._services.code_urls.check(blob_key, _query_string(scope))
            if await current_code(self._services, grant.owner) != grant.blob_key:
                raise codeurl.no_such_key(blob_key)
            try:
                data = await asyncio.to_thread(self._services.blob, grant.blob_key)
            except KeyError:
                raise codeurl.no_such_key(blob_key) from None
        except codeurl.Denied as denied:
            await _respond(send, denied.status, [("content-type", "application/xml"),
                                                 ("x-amz-request-id", request_id)], denied.xml(request_id))
            return
        await _respond(send, 200, [("content-type", "application/zip"), ("x-amz-request-id", request_id)], data)


def _query_string(scope: Scope) -> str:
    raw: bytes = scope.get("query_string", b"")
    return raw.decode("latin-1")


async def _read_request(scope: Scope, path: str, receive: Receive) -> tuple[dict[str, str], str, bytes]:
    """Headers (lower-case names), the raw query string and the whole body (bounded)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return headers, _query_string(scope), await _read_body(receive, headers, path)


def _is_loopback(client: Any) -> bool:
    """Whether the peer address is a loopback one (IPv4-mapped IPv6 included); unix sockets are not."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def _read_body(receive: Receive, headers: dict[str, str], path: str) -> bytes:
    limit = MAX_INVOKE_BYTES if path.endswith(INVOKE_SUFFIX) else MAX_REQUEST_BYTES
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(path, limit)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":  # e.g. closed for pausing too long mid-body
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(path, limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(path: str, limit: int) -> ApiError:
    return too_large(limit, "InvokeFunction" if path.endswith(INVOKE_SUFFIX) else "CreateFunction")


async def _respond(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
