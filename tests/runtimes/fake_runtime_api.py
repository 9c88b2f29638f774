"""A tiny Runtime API for the runtime clients' contract tests.

It serves `/2018-06-01/runtime/…` on 127.0.0.1 as Lambda's Runtime API does: `GET
/invocation/next` waits for an event pushed by the test and answers it with AWS's headers;
`POST …/response`, `…/error` and `/init/error` are recorded and answered 202. Every wait is
bounded, and `close` unblocks the waiting GETs so that the server stops promptly.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


@dataclass(frozen=True)
class Posted:
    """One thing the runtime posted: `kind` is "response", "error" or "init_error"."""

    kind: str
    request_id: str | None
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Event:
    request_id: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a runtime killed by its test resets its connection: not worth a traceback


class FakeRuntimeApi:
    """Start with `with FakeRuntimeApi() as api:`; give the runtime `api.address`."""

    def __init__(self) -> None:
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._posted: queue.Queue[Posted] = queue.Queue()
        self._closed = threading.Event()
        self.first_next_at: float | None = None  # time.monotonic() of the first GET /next
        self.next_count = 0
        self.connections = 0
        self.close_after_each = False  # answer with `Connection: close`, then close
        self.drop_after_post = False  # close silently after answering a POST (a lost keep-alive connection)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                api.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != PREFIX + "/invocation/next":
                    return self._answer(404, b'{"errorType":"NotFound"}')
                if api.first_next_at is None:
                    api.first_next_at = time.monotonic()
                api.next_count += 1
                while not api._closed.is_set():
                    try:
                        event = api._events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if event is None:
                        break
                    headers = {
                        "Lambda-Runtime-Aws-Request-Id": event.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
                        "Lambda-Runtime-Invoked-Function-Arn": ARN,
                        "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;"
                                                   "Sampled=1",
                        "Content-Type": "application/json",
                        **event.headers,
                    }
                    return self._answer(200, event.body, headers)
                self.close_connection = True
                self._answer(500, b'{"errorType":"ServiceStopped"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                path = self.path.removeprefix(PREFIX)
                if path == "/init/error":
                    api._posted.put(Posted("init_error", None, headers, body))
                elif path.startswith("/invocation/") and path.endswith(("/response", "/error")):
                    request_id, _, kind = path.removeprefix("/invocation/").rpartition("/")
                    api._posted.put(Posted(kind, request_id, headers, body))
                else:
                    return self._answer(404, b'{"errorType":"NotFound"}')
                self._answer(202, b'{"status":"OK"}')
                if api.drop_after_post:
                    self.close_connection = True

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                if api.close_after_each:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> FakeRuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def push(self, event: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> str:
        """Queue one invocation; returns its request id."""
        request_id = str(uuid.uuid4())
        body = raw if raw is not None else json.dumps(event).encode()
        self._events.put(Event(request_id, body, headers or {}))
        return request_id

    def posted(self, timeout: float = 20.0) -> Posted:
        """The next thing the runtime posted (bounded wait)."""
        try:
            return self._posted.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the runtime posted nothing within {timeout} s") from None

    def invoke(self, event: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
               timeout: float = 20.0) -> Posted:
        request_id = self.push(event, raw=raw, headers=headers)
        result = self.posted(timeout)
        assert result.request_id == request_id, (result, request_id)
        return result
