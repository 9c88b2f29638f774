"""Incremental HTTP/1.1 request parsing for the Runtime API, with a hard limit on everything.

The peer is code inside an environment, so nothing it sends is trusted. The parser holds at
most one unfinished head (`MAX_HEAD`: room for the X-Ray error-cause header of up to 1 MiB
that AWS's runtime interface clients send with an error) and at most `body_limit` bytes of
a body; a longer body is counted and dropped (`Request.too_large`), and past `discard_limit`
the request is refused. Each violation raises `HttpError` with the status to answer before
closing; nothing else escapes. Work is linear in the bytes fed (nothing is rescanned, and
each byte is copied a bounded number of times), and one `next()` call does at most
`MAX_STEPS` steps, so a stream of tiny chunks or pipelined requests cannot hold the loop.
"""

from __future__ import annotations

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 1024 * 1024 + 1024  # the 1 MiB X-Ray error cause the RICs send at most
MAX_HEADERS = 100
MAX_HEAD = MAX_REQUEST_LINE + MAX_HEADER_VALUE + 32 * 1024
MAX_CHUNK_LINE = 1024
MAX_STEPS = 64  # heads, chunk lines or body pieces per next(): bounds the work of one call

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = range(6)
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_HEX = b"0123456789abcdefABCDEF"
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # RFC 9110 tokens


class HttpError(Exception):
    """A request the server refuses: answer `status`, then close the connection."""

    def __init__(self, status: int, message: str, request: Request | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.request = request  # the head, when the violation came after it (e.g. a body too long)


class Request:
    """One request as received. `body` stays empty when the body was too large to keep."""

    __slots__ = ("body", "body_size", "expect_continue", "headers", "keep_alive", "method", "target", "too_large",
                 "trailers")

    def __init__(self, method: bytes, target: bytes, headers: dict[bytes, bytes], keep_alive: bool,
                 expect_continue: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # names lower-cased; repeated names joined with ", "
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body = b""
        self.body_size = 0  # what the client sent, also when it was too large to keep
        self.too_large = False
        self.trailers: dict[bytes, bytes] = {}


class RequestParser:
    """Feed bytes with `feed`, take complete requests with `next` until it returns None."""

    __slots__ = ("_body", "_buf", "_discard_limit", "_kept", "_limit", "_remaining", "_request", "_scanned",
                 "_state", "continue_due", "more")

    def __init__(self, body_limit: int, discard_limit: int) -> None:
        self._limit = body_limit
        self._discard_limit = discard_limit
        # unparsed input: the bytes as received while they are all there is (no copy), a
        # bytearray once more has to be appended or a large remainder consumed piecemeal
        self._buf: bytes | bytearray = b""
        self._scanned = 0  # how much of an unfinished head was already searched for its end
        self._state = _HEAD
        self._request: Request | None = None
        self._remaining = 0  # bytes of the body, or of the current chunk, still to come
        self._body: list[bytes] = []
        self._kept = 0
        self.continue_due = False  # a head asked for `100 Continue` and its body has not started
        self.more = False  # next() stopped at MAX_STEPS with input left: call it again

    @property
    def buffered(self) -> int:
        """Bytes held: unparsed input plus the kept part of the current body."""
        return len(self._buf) + self._kept

    @property
    def in_request(self) -> bool:
        """Part of a request has arrived and the rest has not."""
        return self._state != _HEAD or bool(self._buf)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            if self._state == _BODY and len(data) <= self._remaining:
                self._take(data)  # the common case of a large body: straight to its pieces
            else:
                self._buf = data
        elif type(buf) is bytearray:
            buf += data
        else:
            self._buf = bytearray(buf)
            self._buf += data

    def _consume(self, n: int) -> None:
        buf = self._buf
        if n >= len(buf):
            self._buf = b""
        elif type(buf) is bytearray:
            del buf[:n]  # O(1): CPython moves a bytearray's start rather than its bytes
        elif len(buf) - n <= 4096:
            self._buf = buf[n:]
        else:
            self._buf = bytearray(buf)
            del self._buf[:n]

    def next(self) -> Request | None:
        """The next complete request, or None until more input arrives (or `more` is set)."""
        self.more = False
        if self._state == _HEAD:
            request = self._head()
            if request is not None or self._state == _HEAD:
                return request
        for _ in range(MAX_STEPS):
            state = self._state
            if state == _HEAD:  # a request was finished: the next one waits for the next call
                return None
            elif state == _BODY:
                if self._remaining and not self._take_buffered(self._remaining):
                    return None
                if not self._remaining:
                    return self._finish()
            elif state == _CHUNK_SIZE:
                if not self._chunk_size():
                    return None
            elif state == _CHUNK_DATA:
                if not self._take_buffered(self._remaining):
                    return None
                if not self._remaining:
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(self._buf) < 2:
                    return None
                if self._buf[:2] != b"\r\n":
                    raise HttpError(400, "malformed chunked body", self._request)
                self._consume(2)
                self._state = _CHUNK_SIZE
            elif not self._trailers():
                return None
            else:
                return self._finish()
        self.more = bool(self._buf)
        return None

    # -- head ----------------------------------------------------------------------------------
    def _head(self) -> Request | None:
        """Parse a head if a whole one has arrived. Returns the request when its body came
        with it (or it has none); otherwise the state says whether a body is awaited."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buf)
            if len(buf) > MAX_REQUEST_LINE and buf.find(b"\r\n", 0, MAX_REQUEST_LINE + 2) < 0:
                raise HttpError(414, "request line too long")
            if len(buf) > MAX_HEAD:
                raise HttpError(431, "request header fields too large")
            return None
        if end > MAX_HEAD:
            raise HttpError(431, "request header fields too large")
        head = buf[:end] if isinstance(buf, bytes) else bytes(buf[:end])
        if end + 4 == len(buf):
            self._buf = b""
        else:
            self._consume(end + 4)
        self._scanned = 0
        lines = head.split(b"\r\n")
        breaks = len(lines) - 1
        # CR and LF only as line ends (a bare one ends a line for some readers), no NUL
        if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b"\0" in head:
            raise HttpError(400, "malformed request head")
        if len(lines[0]) > MAX_REQUEST_LINE:
            raise HttpError(414, "request line too long")
        if breaks > MAX_HEADERS:
            raise HttpError(431, "too many header fields")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1] or parts[2] not in _VERSIONS:
            raise HttpError(400, "malformed request line")
        headers = _parse_fields(lines, 1)
        connection = headers.get(b"connection")
        if connection is None:
            keep_alive = parts[2] == b"HTTP/1.1"
        else:
            connection = connection.lower()
            keep_alive = b"close" not in connection if parts[2] == b"HTTP/1.1" else b"keep-alive" in connection
        expect = headers.get(b"expect")
        request = Request(parts[0], parts[1], headers, keep_alive,
                          expect is not None and expect.lower() == b"100-continue")
        te = headers.get(b"transfer-encoding")
        length = headers.get(b"content-length")
        if te is not None:
            if length is not None or te.lower() != b"chunked":
                raise HttpError(400, "unsupported transfer coding")
            self._state = _CHUNK_SIZE
            self.continue_due = request.expect_continue
        elif length is not None:
            if not length.isdigit() or len(length) > 18:
                raise HttpError(400, "invalid Content-Length")
            remaining = int(length)
            if remaining > self._discard_limit:
                request.too_large = True
                raise HttpError(413, "request body too large", request)
            request.body_size = remaining
            if remaining <= len(self._buf) and remaining <= self._limit:  # the body came with its head
                body = self._buf[:remaining]
                request.body = body if isinstance(body, bytes) else bytes(body)
                self._consume(remaining)
                return request
            self._remaining = remaining
            request.too_large = remaining > self._limit
            self._state = _BODY
            self.continue_due = request.expect_continue and remaining > 0
        else:
            return request
        self._request = request
        return None

    # -- body ----------------------------------------------------------------------------------
    def _take(self, piece: bytes) -> None:
        """Account for `piece` of the body: keep it while the body fits the limit."""
        request = self._request
        assert request is not None
        self.continue_due = False
        self._remaining -= len(piece)
        if self._state == _CHUNK_DATA:
            request.body_size += len(piece)
            if request.body_size > self._limit:
                request.too_large = True
                if request.body_size > self._discard_limit:
                    raise HttpError(413, "request body too large", request)
        if request.too_large:
            self._body.clear()  # what was kept is of no use any more: let it go now
            self._kept = 0
        else:
            self._body.append(piece)
            self._kept += len(piece)

    def _take_buffered(self, wanted: int) -> bool:
        """Take up to `wanted` buffered body bytes; False when there were none."""
        buf = self._buf
        if not buf:
            return False
        n = min(wanted, len(buf))
        piece = bytes(buf[:n]) if type(buf) is bytes else bytes(memoryview(buf)[:n])
        self._consume(n)
        self._take(piece)
        return True

    def _chunk_size(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE)
        if end < 0:
            if len(buf) >= MAX_CHUNK_LINE:
                raise HttpError(400, "chunk size line too long", self._request)
            return False
        digits = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t")
        self._consume(end + 2)
        if not digits or len(digits) > 16 or digits.translate(None, _HEX):
            raise HttpError(400, "malformed chunk size", self._request)
        self.continue_due = False
        self._remaining = int(digits, 16)
        self._state = _CHUNK_DATA if self._remaining else _TRAILERS
        return True

    def _trailers(self) -> bool:
        buf = self._buf
        if buf[:2] == b"\r\n":
            self._consume(2)
            return True
        end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buf)
            if len(buf) > MAX_HEAD:
                raise HttpError(431, "trailer fields too large", self._request)
            return False
        section = bytes(buf[:end])
        self._consume(end + 4)
        self._scanned = 0
        lines = section.split(b"\r\n")
        if len(lines) > MAX_HEADERS:
            raise HttpError(431, "too many trailer fields", self._request)
        if not _clean(section):
            raise HttpError(400, "malformed trailer fields", self._request)
        assert self._request is not None
        self._request.trailers = _parse_fields(lines, 0)
        return True

    def _finish(self) -> Request:
        request = self._request
        assert request is not None
        if self._body and not request.too_large:
            body = self._body
            request.body = body[0] if len(body) == 1 else b"".join(body)
        self._request = None
        self._body = []
        self._kept = 0
        self._state = _HEAD
        self.continue_due = False
        return request


def _clean(head: bytes) -> bool:
    """No NUL, and CR and LF only as line ends (a bare one would end a line for some readers)."""
    lines = head.count(b"\r\n")
    return b"\0" not in head and head.count(b"\r") == lines and head.count(b"\n") == lines


def _parse_fields(lines: list[bytes], start: int) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = {}
    for i in range(start, len(lines)):
        name, colon, value = lines[i].partition(b":")
        # a name is a non-empty token (this also refuses obsolete line folding)
        if not colon or not (name.replace(b"-", b"").isalnum() or (name and not name.translate(None, _TOKEN))):
            raise HttpError(400, "malformed header field")
        if len(name) > MAX_HEADER_NAME or len(value) > MAX_HEADER_VALUE:
            raise HttpError(431, "header field too large")
        name = name.lower()
        value = value.strip(b" \t")
        if name in fields:
            if name == b"content-length" and fields[name] != value:
                raise HttpError(400, "conflicting Content-Length")
            if name != b"content-length":
                fields[name] += b", " + value
        else:
            fields[name] = value
    return fields
