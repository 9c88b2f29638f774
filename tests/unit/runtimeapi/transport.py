"""A fake transport for driving `RuntimeApiProtocol` in unit tests, and a strict reader of
what the server wrote back. The protocol and channel under test are real; only the socket
is replaced (as httpx's MockTransport replaces the network)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from lamina.runtimeapi.server import RuntimeApiProtocol

HIGH_WATER = 64 * 1024


class FakeTransport(asyncio.Transport):
    """Records writes; calls pause_writing past HIGH_WATER until the test drains it."""

    def __init__(self, protocol: RuntimeApiProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.pending = bytearray()
        self.received = bytearray()
        self.closing = False
        self.reading = True
        self.write_paused = False
        self.writes_after_close = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            self.writes_after_close += 1
            return
        self.pending += data
        if len(self.pending) > HIGH_WATER and not self.write_paused:
            self.write_paused = True
            self.protocol.pause_writing()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def drain(self) -> None:
        self.received += self.pending
        self.pending.clear()
        if self.write_paused and not self.closing:
            self.write_paused = False
            self.protocol.resume_writing()

    def close(self) -> None:
        if not self.closing:  # as a real transport: connection_lost on a later turn
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def parse_responses(data: bytes) -> list[Response]:
    """Strictly parse what the server wrote: whole responses only, each correctly framed."""
    out: list[Response] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        assert end >= 0, f"truncated response head: {data[pos:pos + 200]!r}"
        lines = data[pos:end].split(b"\r\n")
        version, status, reason = lines[0].split(b" ", 2)
        assert version == b"HTTP/1.1" and status.isdigit() and reason, lines[0]
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b": ")
            assert sep and name and value and b"\r" not in value and b"\n" not in value, line
            headers[name.lower()] = value
        pos = end + 4
        if int(status) == 100:
            assert not headers
            out.append(Response(100, {}, b""))
            continue
        length = int(headers[b"content-length"])
        body = data[pos:pos + length]
        assert len(body) == length, "truncated response body"
        pos += length
        out.append(Response(int(status), headers, body))
    return out
