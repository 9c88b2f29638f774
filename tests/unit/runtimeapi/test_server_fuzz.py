"""Fuzzing the Runtime API server with the byte streams code inside an environment can send.

Each example opens one to three connections of one environment (real `RuntimeApiProtocol`s
and a real `RuntimeChannel`, over a fake transport that records what is written and honours
pause_reading and the write high-water mark) and feeds them, in arbitrary chunks and
interleavings, either noise or requests assembled from the parts a parser trips on: odd
methods, targets and versions, missing, repeated, conflicting and enormous headers,
Content-Length and chunked framing that lie, trailers, `Expect: 100-continue`,
pipelining, and the occasional multi-megabyte request line, header or body. Meanwhile an
"invoker" dispatches invocations and finishes them. Whatever arrives: no exception
escapes, what the connections hold stays within the limits, each call does a bounded
amount of work, and what is written back is a sequence of well-formed HTTP/1.1 responses,
the last one `Connection: close` only if the connection is then closed.

`make test` runs a few hundred examples; a long hunt:

    LAMINA_FUZZ_EXAMPLES=200000 .venv/bin/pytest -q tests/unit/runtimeapi/test_server_fuzz.py
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from lamina.runtimeapi import parser as limits
from lamina.runtimeapi.channel import Invocation, RuntimeChannel, RuntimeReply
from lamina.runtimeapi.server import (
    BUFFER_BUDGET,
    MAX_REQUEST_BYTES,
    PREFIX,
    REQUESTS_PER_TURN,
    ConnectionSet,
    RuntimeApiProtocol,
)
from tests.fuzzing import fuzz, fuzz_settings
from tests.unit.runtimeapi.transport import FakeTransport, parse_responses

pytestmark = fuzz

STATUSES = {100, 200, 202, 400, 404, 405, 408, 413, 414, 431}
MAX_CHUNK = 256_000  # uvloop's read size


# -- what the peer sends --------------------------------------------------------------------------


def _chunked(body: bytes, cuts: list[int], ext: bytes, trailers: bytes) -> bytes:
    pieces, last = [], 0
    for cut in sorted({c % (len(body) + 1) for c in cuts} | {len(body)}):
        if cut > last:
            pieces.append(b"%x%s\r\n%s\r\n" % (cut - last, ext, body[last:cut]))
            last = cut
    return b"".join(pieces) + b"0\r\n" + trailers + b"\r\n"


request_ids = st.sampled_from(["rid-0", "rid-1", "rid-2", "nope", "", "rid-0/../x", "%00", "\u00e9"])
targets = st.one_of(
    st.sampled_from([b"invocation/next", b"init/error", b"", b"invocation/", b"invocation//response"]).map(
        lambda r: PREFIX + r),
    st.builds(lambda rid, action: PREFIX + b"invocation/" + rid.encode() + b"/" + action,
              request_ids, st.sampled_from([b"response", b"error", b"other", b""])),
    st.binary(max_size=40),
    st.sampled_from([b"/", b"*", b"http://127.0.0.1:9001" + PREFIX + b"invocation/next", PREFIX + b"init/error?x=1"]),
)
methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"get", b"", b"G T", b"P\x00ST"]) | st.binary(max_size=8)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"http/1.1", b""])
names = st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Expect", b"Connection", b"Host",
                         b"Lambda-Runtime-Function-Error-Type", b"Content-Type", b"X-A"]) | st.binary(max_size=12)
values = st.sampled_from([b"0", b"5", b"-1", b"99999999999999999999", b"41943040", b"chunked", b"gzip, chunked",
                          b"100-continue", b"close", b"keep-alive", b"Runtime.Err\tor\x01\xff", b"", b" padded "]) \
    | st.binary(max_size=24)
bodies = st.binary(max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method, target, version = draw(methods), draw(targets), draw(versions)
    headers = [(draw(names), draw(values)) for _ in range(draw(st.integers(0, 5)))]
    body = draw(bodies)
    framing = draw(st.sampled_from(["length", "length", "chunked", "none", "wrong-length"]))
    big = draw(st.sampled_from([None] * 30 + ["target", "header", "headers", "body", "chunks"]))
    if big == "target":
        target += b"a" * draw(st.sampled_from([limits.MAX_REQUEST_LINE, 3 << 20]))
    elif big == "header":
        headers.append((b"X-Big", b"v" * draw(st.sampled_from([limits.MAX_HEADER_VALUE, 3 << 20]))))
    elif big == "headers":
        headers.extend([(b"X-M", b"v")] * draw(st.sampled_from([limits.MAX_HEADERS, 20_000])))
    elif big == "body":
        body = b"b" * draw(st.sampled_from([MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1]))
    elif big == "chunks":
        body = b"c" * 20_000  # one byte per chunk below: 20,000 chunks
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "wrong-length":
        headers.append((b"Content-Length", b"%d" % max(0, len(body) + draw(st.integers(-3, 3)))))
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        cuts = list(range(1, len(body))) if big == "chunks" else draw(st.lists(st.integers(0, 400), max_size=6))
        ext = draw(st.sampled_from([b"", b";a=b", b";" + b"e" * 2000]))
        trailers = draw(st.sampled_from([b"", b"Lambda-Runtime-Function-Error-Type: T\r\n", b"Bad trailer\r\n"]))
        body = _chunked(body, cuts, ext, trailers)
    if draw(st.booleans()):
        draw(st.randoms()).shuffle(headers)
    head = b"%s %s %s\r\n" % (method, target, version) + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"
    raw = head + (body if framing != "none" else b"")
    for _ in range(draw(st.integers(0, 2))):  # a few flipped, dropped or inserted bytes
        at = draw(st.integers(0, max(0, min(len(raw), 4096) - 1)))
        kind = draw(st.sampled_from(["flip", "drop", "insert"]))
        if kind == "flip" and raw:
            raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1:]
        elif kind == "drop":
            raw = raw[:at] + raw[at + 1:]
        else:
            raw = raw[:at] + draw(st.sampled_from([b"\r\n", b"\r", b"\n", b"\x00", b" ", b":"])) + raw[at:]
    return raw


streams = st.one_of(
    st.lists(requests(), min_size=1, max_size=4).map(b"".join),
    st.binary(max_size=2000),
    st.lists(st.sampled_from([b"GET " + PREFIX + b"invocation/next HTTP/1.1\r\n\r\n",
                              b"POST " + PREFIX + b"invocation/rid-0/response HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
                              b"GET /x HTTP/1.1\r\n\r\n"]), min_size=1, max_size=40).map(b"".join),
)


# -- the scenario -----------------------------------------------------------------------------------


@dataclass
class Conn:
    protocol: RuntimeApiProtocol
    transport: FakeTransport
    data: bytes
    sizes: list[int]
    pos: int = 0
    feeds: int = 0

    @property
    def finished(self) -> bool:
        return self.pos >= len(self.data) or self.transport.closing


async def _run(streams_and_sizes: list[tuple[bytes, list[int]]], schedule: list[int], invoker: list[bool]) -> None:
    channel = RuntimeChannel()
    conns = ConnectionSet(channel, asyncio.get_running_loop())
    peers: list[Conn] = []
    for data, sizes in streams_and_sizes:
        protocol = RuntimeApiProtocol(channel, conns)
        transport = FakeTransport(protocol)
        protocol.connection_made(transport)
        peers.append(Conn(protocol, transport, data, sizes))
    dispatched = stuck = step = 0
    reply: asyncio.Future[RuntimeReply] | None = None
    while not all(p.finished for p in peers) and stuck < 20:
        if invoker[step % len(invoker)]:  # the invoker's side: start an invocation, or end one that was answered
            if channel.current is None:
                reply = channel.dispatch(
                    Invocation(f"rid-{dispatched % 3}", b'{"n":%d}' % dispatched, 0, "arn", "Root=1"))
                dispatched += 1
            elif reply is not None and reply.done():
                channel.finish()
        peer = peers[schedule[step % len(schedule)] % len(peers)]
        step += 1
        transport = peer.transport
        transport.drain()
        await asyncio.sleep(0)  # the loop turn in which paused connections are resumed
        if peer.finished or not transport.reading:
            stuck += 1  # e.g. parked in GET /next with a request pipelined behind it
            continue
        stuck = 0
        # tiny pieces, except that a long stream comes in at most ~2,000 of them (a bounded run time)
        size = min(max(peer.sizes[peer.feeds % len(peer.sizes)], len(peer.data) // 2000), MAX_CHUNK)
        peer.feeds += 1
        chunk = peer.data[peer.pos:peer.pos + size]
        peer.pos += len(chunk)
        transport.drain()
        peer.protocol.data_received(chunk)
        # bounded work per call: a turn's worth of requests answered, then the rest waits
        assert len(parse_responses(bytes(transport.pending))) <= REQUESTS_PER_TURN + 1
        assert peer.protocol._parser.buffered <= MAX_REQUEST_BYTES + limits.MAX_HEAD + 2 * MAX_CHUNK
        assert conns.buffered <= BUFFER_BUDGET + len(peers) * MAX_CHUNK, conns.buffered
    for _ in range(5):
        for peer in peers:
            peer.transport.drain()
        await asyncio.sleep(0)
    for peer in peers:
        _check_stream(peer)
        if not peer.transport.closing:
            peer.transport.close()
    await asyncio.sleep(0)
    assert conns.buffered == 0 and not conns.conns


def _check_stream(peer: Conn) -> None:
    transport = peer.transport
    transport.drain()
    responses = parse_responses(bytes(transport.received))
    assert transport.writes_after_close == 0
    for i, response in enumerate(responses):
        assert response.status in STATUSES, response
        if response.headers.get(b"connection") == b"close":
            assert i == len(responses) - 1, "a response after Connection: close"
            assert transport.closing
        if response.status == 200:
            assert response.headers[b"lambda-runtime-aws-request-id"].startswith(b"rid-")
            assert json.loads(response.body)["n"] >= 0
        elif response.status != 100:
            body = json.loads(response.body)
            assert body == {"status": "OK"} if response.status == 202 else set(body) == {"errorMessage", "errorType"}
        if response.status in (408, 414, 431):
            assert transport.closing


chunk_sizes = st.lists(st.integers(1, 70_000) | st.sampled_from([1, 2, 3, MAX_CHUNK]), min_size=1, max_size=8)


@fuzz_settings
@given(connections=st.lists(st.tuples(streams, chunk_sizes), min_size=1, max_size=3),
       schedule=st.lists(st.integers(0, 2), min_size=1, max_size=12),
       invoker=st.lists(st.booleans(), min_size=1, max_size=6))
def test_any_byte_stream_gets_well_formed_answers_within_the_limits(
        connections: list[tuple[bytes, list[int]]], schedule: list[int], invoker: list[bool]) -> None:
    asyncio.run(_run(connections, schedule, invoker))
