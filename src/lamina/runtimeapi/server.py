"""The Runtime API (`/2018-06-01/runtime/…`) served on one environment's own socket.

Each environment has its own listening socket at 127.0.0.1:9001 inside its network
namespace, so the connection itself says which environment is speaking: every
protocol instance is bound to one `RuntimeChannel`. HTTP/1.1 keep-alive, parsed with
httptools; handlers are a few lines each and only call the channel.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httptools

from lamina.runtimeapi.channel import MAX_RESPONSE_BYTES, Invocation, NextWaiter, RuntimeChannel, RuntimeReply

PREFIX = b"/2018-06-01/runtime/"
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
            405: b"Method Not Allowed", 413: b"Request Entity Too Large", 500: b"Internal Server Error"}
_ACCEPTED = b'{"status":"OK"}'
MAX_REQUEST_BYTES = MAX_RESPONSE_BYTES


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class RuntimeApiProtocol(asyncio.Protocol, NextWaiter):
    __slots__ = ("_body", "_channel", "_headers", "_parser", "_size", "_too_large", "_transport", "_url")

    def __init__(self, channel: RuntimeChannel) -> None:
        self._channel = channel
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            self._respond(400, _error_body("InvalidRequest", "malformed HTTP request"))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel.drop_waiter(self)
        self._transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_REQUEST_BYTES:
            self._too_large = True
            self._body.clear()
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        url = self._url.split(b"?", 1)[0]
        if not url.startswith(PREFIX):
            self._respond(404, _error_body("InvalidRequest", "not found"))
            return
        route = url[len(PREFIX):]
        if route == b"invocation/next":
            if method != b"GET":
                self._respond(405, _error_body("InvalidRequest", "method not allowed"))
            else:
                self._channel.next(self)
        elif route.startswith(b"invocation/") and method == b"POST":
            request_id, _, action = route[len(b"invocation/"):].partition(b"/")
            self._invocation_result(request_id.decode(), action)
        elif route == b"init/error" and method == b"POST":
            self._channel.report_init_error(RuntimeReply(False, b"".join(self._body), self._error_type()))
            self._respond(202, _ACCEPTED)
        else:
            self._respond(404, _error_body("InvalidRequest", "not found"))

    # handlers
    def _invocation_result(self, request_id: str, action: bytes) -> None:
        if action == b"response":
            if self._too_large:
                reply = RuntimeReply(False, _error_body(
                    "Function.ResponseSizeTooLarge",
                    f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                ), "Function.ResponseSizeTooLarge")
                if self._channel.reply(request_id, reply):
                    self._respond(413, _error_body(
                        "RequestEntityTooLarge",
                        f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                    ))
                    return
            elif self._channel.reply(request_id, RuntimeReply(True, b"".join(self._body))):
                self._respond(202, _ACCEPTED)
                return
        elif action == b"error":
            body = b"".join(self._body) if not self._too_large else b""
            if self._channel.reply(request_id, RuntimeReply(False, body, self._error_type())):
                self._respond(202, _ACCEPTED)
                return
        else:
            self._respond(404, _error_body("InvalidRequest", "not found"))
            return
        self._respond(400, _error_body("InvalidRequestID", "Invalid request ID"))

    def _error_type(self) -> str:
        value = self._headers.get(b"lambda-runtime-function-error-type")
        return value.decode("utf-8", "replace") if value else "Unhandled"

    # NextWaiter
    def deliver(self, invocation: Invocation) -> None:
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Lambda-Runtime-Aws-Request-Id", invocation.request_id.encode()),
            (b"Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms).encode()),
            (b"Lambda-Runtime-Invoked-Function-Arn", invocation.invoked_function_arn.encode()),
            (b"Lambda-Runtime-Trace-Id", invocation.trace_id.encode()),
        ]
        if invocation.client_context is not None:
            headers.append((b"Lambda-Runtime-Client-Context", invocation.client_context.encode()))
        if invocation.cognito_identity is not None:
            headers.append((b"Lambda-Runtime-Cognito-Identity", invocation.cognito_identity.encode()))
        self._respond(200, invocation.payload, headers)

    def _respond(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        if headers is None:
            head.append(b"Content-Type: application/json\r\n")
        else:
            head.extend(b"%s: %s\r\n" % kv for kv in headers)
        head.append(b"Content-Length: %d\r\n\r\n" % len(body))
        transport.writelines([b"".join(head), body])

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(sock: socket.socket, channel: RuntimeChannel) -> asyncio.Server:
    """Serve the Runtime API for one environment on its already-listening socket."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: RuntimeApiProtocol(channel), sock=sock)
