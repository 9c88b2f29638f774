"""The Runtime API (`/2018-06-01/runtime/…`) served on one environment's own socket.

Each environment has its own listening socket at 127.0.0.1:9001 inside its network
namespace, so the connection itself says which environment is speaking: every protocol
instance is bound to one `RuntimeChannel`. HTTP/1.1 keep-alive, parsed by `parser`;
handlers are a few lines each and only call the channel.

Whatever arrives here comes from code inside the environment and is untrusted, so it is
bounded before it can cost the server anything:
- memory: an environment has at most `MAX_CONNECTIONS` connections (extras are closed at
  once) holding at most `BUFFER_BUDGET` request bytes between them; a peer that does not
  read its responses is not read from;
- time: a request must arrive whole within `REQUEST_TIMEOUT_S` of being started, and an idle
  connection is closed after `IDLE_TIMEOUT_S` in which its environment was awake yet neither
  serving an invocation nor waiting for one. A connection parked in `GET /next` never times
  out, and no clock runs against a frozen environment (it freezes only while parked);
- the event loop: a connection is read at most once per loop turn once it has sent
  `READ_QUANTUM` bytes, and a turn handles at most `REQUESTS_PER_TURN` of its requests, so
  every other socket gets its turn after a bounded amount of work; and each environment has
  a work budget (`WORK_RATE`, in bytes read plus a price per request, connection and
  violation) past which its connections are not read and new ones are refused for a while.
Violations are answered with their HTTP status (400, 408, 413, 414, 431) and the connection
is closed. The limits are far above what a runtime interface client needs (measured in
bench/runtime_flood.py and tests/security/test_runtime_api_abuse.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import cast

from lamina.runtimeapi.channel import MAX_RESPONSE_BYTES, Invocation, NextWaiter, RuntimeChannel, RuntimeReply
from lamina.runtimeapi.parser import HttpError, Request, RequestParser

PREFIX = b"/2018-06-01/runtime/"
_REASONS = {100: b"Continue", 200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden",
            404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
            413: b"Request Entity Too Large", 414: b"URI Too Long", 431: b"Request Header Fields Too Large",
            500: b"Internal Server Error"}
_ACCEPTED = b'{"status":"OK"}'
_ACCEPTED_RESPONSE = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(_ACCEPTED), _ACCEPTED))
_NEXT_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: %s\r\n"
              b"Lambda-Runtime-Deadline-Ms: %d\r\nLambda-Runtime-Invoked-Function-Arn: %s\r\n"
              b"Lambda-Runtime-Trace-Id: %s\r\n%sContent-Length: %d\r\n\r\n")
MAX_REQUEST_BYTES = MAX_RESPONSE_BYTES
# A response over the limit is read and dropped up to here, so that the runtime still gets its
# 413 on a usable connection (as from AWS); past it the connection is closed instead.
DISCARD_LIMIT = 32 * 1024 * 1024
MAX_CONNECTIONS = 32  # a runtime uses 1-3; room for future extensions (10 per function on AWS)
BUFFER_BUDGET = 16 * 1024 * 1024  # one full response and one full head, with room to spare
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0  # > the 10 s init timeout: a connection opened during init stays
SWEEP_INTERVAL_S = 1.0
READ_QUANTUM = 64 * 1024
REQUESTS_PER_TURN = 8
# Each environment may make the server do this much work per second, counted in bytes read
# plus a price per request, connection and violation; past it, its connections are not read
# and new ones are refused until the budget has refilled. A runtime moves a few KB per
# invocation, and one 6 MB response fits the burst; a flood gets ~1/8 of a core here.
WORK_RATE = 64 * 1024 * 1024
WORK_BURST = 32 * 1024 * 1024
REQUEST_COST = 8 * 1024
CONNECTION_COST = 64 * 1024
VIOLATION_COST = 1024 * 1024
MAX_ERROR_TYPE = 128
_UNPRINTABLE = bytes(range(0x20)) + bytes(range(0x7F, 0x100))


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _error_type(request: Request) -> str:
    """The runtime's error type, fit for a log line and an invoke response: its first
    `MAX_ERROR_TYPE` printable ASCII characters; "Unhandled" when it names nothing."""
    value = request.headers.get(b"lambda-runtime-function-error-type", b"")
    cleaned = value[:4 * MAX_ERROR_TYPE].translate(None, _UNPRINTABLE).strip()[:MAX_ERROR_TYPE]
    return cleaned.decode("ascii") if cleaned else "Unhandled"


class ConnectionSet:
    """The connections of one environment's Runtime API and the limits they share.

    One sweep timer, armed only while something needs watching (an unfinished request, an
    idle connection of an environment that is awake), enforces the time limits."""

    __slots__ = ("_loop", "_stamp", "_sweep", "_throttled", "_tokens", "_turns_seen", "_wake", "buffered", "channel",
                 "conns")

    def __init__(self, channel: RuntimeChannel, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self.conns: set[RuntimeApiProtocol] = set()
        self.buffered = 0  # request bytes held by all connections
        self._loop = loop
        self._sweep: asyncio.TimerHandle | None = None
        self._turns_seen = -1
        self._tokens = float(WORK_BURST)  # the work budget, in bytes read (a token bucket)
        self._stamp = loop.time()
        self._throttled: list[RuntimeApiProtocol] = []
        self._wake: asyncio.TimerHandle | None = None

    def admit(self, conn: RuntimeApiProtocol) -> bool:
        if len(self.conns) >= MAX_CONNECTIONS or not self.spend(CONNECTION_COST):
            return False
        self.conns.add(conn)
        return True

    def spend(self, cost: float) -> bool:
        """Charge `cost` to the environment's work budget: False while it is overdrawn."""
        now = self._loop.time()
        tokens = min(WORK_BURST, self._tokens + (now - self._stamp) * WORK_RATE) - cost
        self._stamp = now
        self._tokens = tokens
        return tokens >= 0

    def throttle(self, conn: RuntimeApiProtocol) -> None:
        """Stop reading `conn` until the budget has refilled."""
        self._throttled.append(conn)
        if self._wake is None:
            self._wake = self._loop.call_later(-self._tokens / WORK_RATE, self._refilled)

    def _refilled(self) -> None:
        self._wake = None
        if not self.spend(0):
            self._wake = self._loop.call_later(-self._tokens / WORK_RATE, self._refilled)
            return
        throttled, self._throttled = self._throttled, []
        for conn in throttled:
            conn.unthrottle()

    def watch(self) -> None:
        if self._sweep is None:
            self._sweep = self._loop.call_later(SWEEP_INTERVAL_S, self.sweep)

    def sweep(self) -> None:
        """Enforce the time limits on every connection (each SWEEP_INTERVAL_S while needed)."""
        self._sweep = None
        channel = self.channel
        # "quiet": awake (init, or a runtime that has not asked for its next event) and
        # nothing has happened on the channel since the last sweep
        awake = channel.current is None and not channel.parked and not channel.closed
        quiet = awake and channel.turns == self._turns_seen
        self._turns_seen = channel.turns
        now = self._loop.time()
        again = False
        for conn in list(self.conns):
            again = conn.check(now, quiet, awake) or again
        if again:
            self.watch()


class RuntimeApiProtocol(asyncio.Protocol, NextWaiter):
    __slots__ = ("_buffered", "_channel", "_close_after", "_conns", "_done", "_held", "_idle_sweeps", "_loop",
                 "_parked", "_parser", "_reading", "_since", "_throttled", "_transport", "_turn_bytes", "_turn_due",
                 "_write_paused")

    def __init__(self, channel: RuntimeChannel, connections: ConnectionSet | None = None) -> None:
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._conns = connections or ConnectionSet(channel, self._loop)
        self._parser = RequestParser(MAX_REQUEST_BYTES, DISCARD_LIMIT)
        self._transport: asyncio.Transport | None = None
        self._done = False  # closed or refused: nothing more is read or answered
        self._parked = False  # in GET /next, not yet answered
        self._close_after = False
        self._write_paused = False
        self._reading = True
        self._held = False  # reading paused until the next turn
        self._throttled = False  # reading paused until the environment's work budget refills
        self._turn_due = False
        self._turn_bytes = 0
        self._buffered = 0
        self._since = 0.0  # loop time the unfinished request was first seen at (0: none)
        self._idle_sweeps = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = self._transport = cast(asyncio.Transport, transport)
        if not self._conns.admit(self):
            self._done = True
            tcp.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conns.watch()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._turn_bytes += len(data)
        self._parser.feed(data)
        self._process(len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._conns.conns.discard(self)
        self._conns.buffered -= self._buffered
        self._buffered = 0
        self._channel.drop_waiter(self)
        self._transport = None

    def pause_writing(self) -> None:
        self._write_paused = True  # the peer does not read: stop taking its requests
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._process()

    def unthrottle(self) -> None:
        self._throttled = False
        if not self._done:
            self._process()

    # request flow
    def _process(self, received: int = 0) -> None:
        parser = self._parser
        handled = 0
        try:
            while not (self._parked or self._write_paused or self._throttled or self._done):
                request = parser.next()
                if request is None:
                    break
                self._idle_sweeps = 0
                self._since = 0.0
                self._handle(request)
                handled += 1
                if handled == REQUESTS_PER_TURN:
                    break
            if parser.continue_due and not self._done:
                parser.continue_due = False
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        except HttpError as exc:
            self._refuse(exc)
            return
        if self._done:
            return
        held = parser.buffered
        if held or self._buffered:
            self._account(held)
            if self._done:
                return
        if (received or handled) and not self._conns.spend(received + handled * REQUEST_COST):
            self._throttled = True
            self._conns.throttle(self)
        # more to do now (steps or requests left) or a quantum read: continue next turn
        if (parser.more or handled == REQUESTS_PER_TURN or self._turn_bytes >= READ_QUANTUM) \
                and not (self._parked or self._throttled):
            self._held = True
            self._schedule_turn()
        if parser.in_request and not self._parked:
            if not self._since:
                self._since = self._loop.time()
                self._conns.watch()
        else:
            self._since = 0.0
        if self._held or self._write_paused or self._throttled or not self._reading or self._parked:
            self._update_reading()

    def _schedule_turn(self) -> None:
        if not self._turn_due:
            self._turn_due = True
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_due = False
        self._held = False
        self._turn_bytes = 0
        if not self._done:
            self._process()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # a request pipelined behind GET /next waits, unread, until the answer has gone
        want = not (self._held or self._write_paused or self._throttled or (self._parked and self._parser.in_request))
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _account(self, held: int) -> None:
        """Charge what the parser holds (`held` bytes) to the environment's budget."""
        conns = self._conns
        conns.buffered += held - self._buffered
        self._buffered = held
        if conns.buffered > BUFFER_BUDGET:
            self._refuse(HttpError(413, "the environment's connections hold too many request bytes"))

    def check(self, now: float, quiet: bool, awake: bool) -> bool:
        """Enforce the time limits (called by the sweep); True while this needs watching."""
        if self._done:
            return False
        if self._since:
            if now - self._since >= REQUEST_TIMEOUT_S:
                self._refuse(HttpError(408, "request not completed in time"))
                return False
            return True
        if self._parked:
            return False
        if quiet:
            self._idle_sweeps += 1
            if self._idle_sweeps * SWEEP_INTERVAL_S >= IDLE_TIMEOUT_S:
                self._close()
                return False
        else:
            self._idle_sweeps = 0
        return awake

    def _refuse(self, exc: HttpError) -> None:
        self._conns.spend(VIOLATION_COST)  # an environment that keeps at it is throttled sooner
        request = exc.request
        if exc.status == 413 and request is not None and request.method == b"POST":
            # a response too large even to read: its invocation still fails as on AWS
            route = request.target.partition(b"?")[0][len(PREFIX):]
            if route.startswith(b"invocation/") and route.endswith(b"/response"):
                self._response_too_large(route[len(b"invocation/"):-len(b"/response")].decode("latin-1"))
        error_type = "RequestEntityTooLarge" if exc.status == 413 else "InvalidRequest"
        self._respond(exc.status, _error_body(error_type, exc.message), close=True)
        self._close()

    # handlers
    def _handle(self, request: Request) -> None:
        self._close_after = not request.keep_alive
        path = request.target.partition(b"?")[0]
        if not path.startswith(PREFIX):
            self._respond(404, _error_body("InvalidRequest", "not found"))
            return
        route = path[len(PREFIX):]
        if route == b"invocation/next":
            if request.method != b"GET":
                self._respond(405, _error_body("InvalidRequest", "method not allowed"))
            else:
                self._parked = True  # set first: the channel may answer at once
                self._channel.next(self)
        elif route.startswith(b"invocation/") and request.method == b"POST":
            self._invocation_result(request)
        elif route == b"init/error" and request.method == b"POST":
            self._channel.report_init_error(RuntimeReply(False, request.body, _error_type(request)))
            self._respond(202, _ACCEPTED)
        else:
            self._respond(404, _error_body("InvalidRequest", "not found"))
        if self._parked:
            return
        self._conns.watch()  # the runtime has answered: its environment may now be awake

    def _invocation_result(self, request: Request) -> None:
        path = request.target.partition(b"?")[0]
        request_id, _, action = path[len(PREFIX) + len(b"invocation/"):].partition(b"/")
        rid = request_id.decode("latin-1")
        if action == b"response":
            if request.too_large:
                if self._response_too_large(rid):
                    self._respond(413, _error_body(
                        "RequestEntityTooLarge",
                        f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                    ))
                    return
            elif self._channel.reply(rid, RuntimeReply(True, request.body)):
                self._respond(202, _ACCEPTED)
                return
        elif action == b"error":
            # an error body too large to keep is dropped; the error type still counts
            if self._channel.reply(rid, RuntimeReply(False, request.body, _error_type(request))):
                self._respond(202, _ACCEPTED)
                return
        else:
            self._respond(404, _error_body("InvalidRequest", "not found"))
            return
        self._respond(400, _error_body("InvalidRequestID", "Invalid request ID"))

    def _response_too_large(self, rid: str) -> bool:
        return self._channel.reply(rid, RuntimeReply(False, _error_body(
            "Function.ResponseSizeTooLarge",
            f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
        ), "Function.ResponseSizeTooLarge"))

    # NextWaiter
    def deliver(self, invocation: Invocation) -> None:
        self._parked = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        extra = b""
        if invocation.client_context is not None:
            extra += b"Lambda-Runtime-Client-Context: %s\r\n" % invocation.client_context.encode()
        if invocation.cognito_identity is not None:
            extra += b"Lambda-Runtime-Cognito-Identity: %s\r\n" % invocation.cognito_identity.encode()
        if self._close_after:
            extra += b"Connection: close\r\n"
        payload = invocation.payload
        head = _NEXT_HEAD % (invocation.request_id.encode(), invocation.deadline_ms,
                             invocation.invoked_function_arn.encode(), invocation.trace_id.encode(), extra,
                             len(payload))
        if len(payload) <= 16384:  # one write, no second buffer for a small event
            transport.write(head + payload)
        else:
            transport.writelines([head, payload])
        if self._close_after:
            self._close()
        elif self._parser.in_request:
            self._schedule_turn()  # what was pipelined behind GET /next

    def _respond(self, status: int, body: bytes, close: bool = False) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        close = close or self._close_after
        if status == 202 and not close:
            transport.write(_ACCEPTED_RESPONSE)
            return
        transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
            status, _REASONS.get(status, b"Unknown"), b"Connection: close\r\n" if close else b"", len(body), body))
        if close:
            self._close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self._done = True
        self._parked = False
        self._channel.drop_waiter(self)
        if self._transport is not None:
            self._transport.close()


async def serve(sock: socket.socket, channel: RuntimeChannel) -> asyncio.Server:
    """Serve the Runtime API for one environment on its already-listening socket."""
    loop = asyncio.get_running_loop()
    connections = ConnectionSet(channel, loop)
    return await loop.create_server(lambda: RuntimeApiProtocol(channel, connections), sock=sock,
                                    backlog=MAX_CONNECTIONS)
