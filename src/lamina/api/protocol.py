"""The API server's HTTP/1.1 connections: uvicorn's httptools protocol with request deadlines.

uvicorn times out only idle keep-alive connections; one that has sent part of a request (or
connected and sent nothing) is kept forever, so a few slow clients can hold every descriptor
the process has (slowloris). This subclass adds, per connection:

- a header deadline: a request's headers (from a new connection, or from the first byte of
  the next request on a kept-alive one) must be complete within `header_timeout` seconds,
  and hold at most `MAX_HEADER_BYTES`;
- a body deadline: while a request body is being received, a pause of more than
  `body_timeout` seconds between its chunks ends the connection.

A connection that misses a deadline is closed (the ASGI app, if running, sees
`http.disconnect`). Neither deadline runs while uvicorn itself has paused reading (flow
control, a pipelined request waiting its turn): that wait is the server's, not the client's.
Idle keep-alive is unchanged (uvicorn's `timeout_keep_alive`). Only the parser callbacks
below are overridden, each calling uvicorn's own first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEADER_BYTES", "GuardedHttpToolsProtocol", "guarded_protocol"]

log = logging.getLogger("lamina.api")

# request line and headers together; a signed AWS request uses 1 to 3 KB (a presigned URL ~1.5 KB)
MAX_HEADER_BYTES = 64 * 1024


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 30.0
    body_timeout: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes: int | None = 0  # None once the current request's headers are complete

    # -- connection ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "request headers")  # a connection that never speaks

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # counted per read, so a read that also carries the body counts whole: a coarse bound
        if self._header_bytes is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        headers_pending = self._header_bytes is not None and self._header_bytes > MAX_HEADER_BYTES
        if headers_pending and not self.transport.is_closing():
            self._close(f"request headers over {MAX_HEADER_BYTES} bytes")

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the first byte of a request on a kept-alive connection
            self._arm(self.header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._header_bytes = None
        self._arm(self.body_timeout, "request body")

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_timeout, "request body")  # the pause allowed is between chunks

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._header_bytes = 0  # counting starts again with the next request's bytes

    # -- deadlines -----------------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # uvicorn stopped reading: not the client's delay
            self._arm(seconds, what)
            return
        self._close(f"{what} not received within {seconds:g} s")

    def _close(self, why: str) -> None:
        self._disarm()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.debug("closing the connection from %s: %s", client, why)
        self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn.Config(http=...), with these deadlines."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
