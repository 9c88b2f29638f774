"""Each limit of the Runtime API server, one at a time, with a real protocol and channel.

What a violation is answered with and that the connection is then closed; that bodies are
never kept past the limit; that pipelined work is spread over loop turns; and the clocks:
an unfinished request times out, a parked `GET /next` never does, and an idle connection
only counts time while its environment is awake and nothing happens on its channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from lamina.runtimeapi import parser
from lamina.runtimeapi.channel import Invocation, RuntimeChannel, RuntimeReply
from lamina.runtimeapi.server import (
    BUFFER_BUDGET,
    IDLE_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_ERROR_TYPE,
    MAX_REQUEST_BYTES,
    REQUEST_TIMEOUT_S,
    REQUESTS_PER_TURN,
    SWEEP_INTERVAL_S,
    WORK_BURST,
    WORK_RATE,
    ConnectionSet,
    RuntimeApiProtocol,
)
from tests.unit.runtimeapi.transport import FakeTransport, Response, parse_responses

API = b"/2018-06-01/runtime/"
NEXT = b"GET " + API + b"invocation/next HTTP/1.1\r\n\r\n"


class Env:
    """One environment's Runtime API: a channel and its connections."""

    def __init__(self) -> None:
        self.channel = RuntimeChannel()
        self.conns = ConnectionSet(self.channel, asyncio.get_running_loop())

    def connect(self) -> tuple[RuntimeApiProtocol, FakeTransport]:
        protocol = RuntimeApiProtocol(self.channel, self.conns)
        transport = FakeTransport(protocol)
        protocol.connection_made(transport)
        return protocol, transport


def run(scenario: Callable[[Env], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario(Env())

    asyncio.run(main())


def answers(transport: FakeTransport) -> list[Response]:
    transport.drain()
    return parse_responses(bytes(transport.received))


async def feed(protocol: RuntimeApiProtocol, transport: FakeTransport, data: bytes, piece: int = 65536) -> None:
    """Deliver `data` the way a socket would: in pieces, none while reading is paused (then
    it waits, a few loop turns or until a throttled environment's budget refills)."""
    for i in range(0, len(data), piece):
        for turn in range(300):
            if transport.reading or transport.closing:
                break
            await asyncio.sleep(0 if turn < 5 else 0.01)
        if transport.closing:
            return
        assert transport.reading, "reading was never resumed"
        protocol.data_received(data[i:i + piece])


def refused(transport: FakeTransport, status: int) -> bool:
    got = answers(transport)
    return (len(got) == 1 and got[0].status == status and got[0].headers.get(b"connection") == b"close"
            and transport.closing)


# -- limits on what a request may be ---------------------------------------------------------------


def test_a_long_request_line_is_refused_with_414_without_holding_it() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        await feed(protocol, transport, b"GET /" + b"a" * (50 << 20))
        assert refused(transport, 414)
        assert protocol._parser.buffered <= parser.MAX_REQUEST_LINE + 2 * 65536

    run(scenario)


def test_long_or_many_header_fields_are_refused_with_431() -> None:
    async def scenario(env: Env) -> None:
        heads = [
            b"GET /x HTTP/1.1\r\nX-Big: " + b"v" * (50 << 20),  # never ends
            b"GET /x HTTP/1.1\r\n" + b"X-Many: v\r\n" * (parser.MAX_HEADERS + 1) + b"\r\n",
            b"GET /x HTTP/1.1\r\n" + b"N" * (parser.MAX_HEADER_NAME + 1) + b": v\r\n\r\n",
            b"GET /x HTTP/1.1\r\n" + b"X-Many: v\r\n" * 200_000,  # never ends either
        ]
        for head in heads:
            protocol, transport = env.connect()
            await feed(protocol, transport, head)
            assert refused(transport, 431), head[:40]
            assert protocol._parser.buffered <= parser.MAX_HEAD + 65536

    run(scenario)


def test_a_head_of_up_to_one_mebibyte_is_accepted_as_from_aws() -> None:
    # the runtime interface clients send X-Ray error causes of up to 1 MiB as a header
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        env.channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
        await feed(protocol, transport, NEXT)
        cause = b"c" * (1024 * 1024 - 1)
        await feed(protocol, transport, b"POST " + API + b"invocation/rid/error HTTP/1.1\r\n"
             b"Lambda-Runtime-Function-XRay-Error-Cause: " + cause + b"\r\nContent-Length: 2\r\n\r\n{}")
        assert [a.status for a in answers(transport)] == [200, 202] and not transport.closing

    run(scenario)


def test_malformed_requests_are_refused_with_400() -> None:
    async def scenario(env: Env) -> None:
        for request in [
            b"GET /x HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /x HTTP/1.1\nX: a\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX: a\0\r\n\r\n",
            b"GET  /x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/3\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 2000 + b"\r\n",
        ]:
            protocol, transport = env.connect()
            await feed(protocol, transport, request)
            assert refused(transport, 400), request

    run(scenario)


def test_a_response_too_large_is_dropped_as_it_arrives_and_fails_the_invocation() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        reply = env.channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
        await feed(protocol, transport, NEXT)
        size = MAX_REQUEST_BYTES + 1
        await feed(protocol, transport, b"POST " + API + b"invocation/rid/response HTTP/1.1\r\n"
             b"Content-Length: %d\r\n\r\n" % size)
        peak = 0
        for _ in range(size // 65536 + 1):
            await feed(protocol, transport, b"x" * min(65536, size))
            size -= 65536
            peak = max(peak, protocol._parser.buffered)
            await asyncio.sleep(0)  # the turns in which reading resumes
            if size <= 0:
                break
        assert peak <= MAX_REQUEST_BYTES
        got = answers(transport)
        assert [a.status for a in got] == [200, 413] and not transport.closing  # still usable, as on AWS
        assert reply.done() and reply.result().error_type == "Function.ResponseSizeTooLarge"

    run(scenario)


def test_a_body_past_the_discard_limit_is_refused_at_once() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        reply = env.channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
        await feed(protocol, transport, NEXT)
        await feed(protocol, transport, b"POST " + API + b"invocation/rid/response HTTP/1.1\r\n"
             b"Content-Length: 10000000000\r\n\r\n")
        assert [a.status for a in answers(transport)] == [200, 413] and transport.closing
        assert reply.result().error_type == "Function.ResponseSizeTooLarge"
        # chunked: refused once what arrived passes the limit, never held
        protocol, transport = env.connect()
        await feed(protocol, transport, b"POST " + API + b"init/error HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"z" * 65536 + b"\r\n"
        for _ in range(2000):
            if transport.closing:
                break
            await feed(protocol, transport, chunk)
            assert protocol._parser.buffered <= MAX_REQUEST_BYTES + len(chunk)
        assert refused(transport, 413)

    run(scenario)


def test_the_error_type_is_bounded_and_printable() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        for error_type, expected in [(b"Evil\tType\x01\x7f\xff" + b"T" * 5000, "EvilType" + "T" * 120),
                                     (b"\t\x01", "Unhandled"), (b"Function.MyError", "Function.MyError")]:
            reply = env.channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
            await feed(protocol, transport, NEXT)
            await feed(protocol, transport, b"POST " + API + b"invocation/rid/error HTTP/1.1\r\n"
                 b"Lambda-Runtime-Function-Error-Type: " + error_type + b"\r\nContent-Length: 2\r\n\r\n{}")
            assert reply.result().error_type == expected and len(expected) <= MAX_ERROR_TYPE
            env.channel.finish()

    run(scenario)


def test_expect_100_continue_is_answered_before_the_body() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        await feed(protocol, transport, b"POST " + API + b"init/error HTTP/1.1\r\nExpect: 100-continue\r\n"
             b"Content-Length: 2\r\n\r\n")
        assert [a.status for a in answers(transport)] == [100]
        await feed(protocol, transport, b"{}")
        assert [a.status for a in answers(transport)] == [100, 202]
        assert env.channel.init_error == RuntimeReply(False, b"{}", "Unhandled")

    run(scenario)


# -- work per loop turn, and peers that do not read --------------------------------------------------


def test_pipelined_requests_are_answered_in_order_a_turn_at_a_time() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        requests = b"".join(b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(3 * REQUESTS_PER_TURN + 1))
        protocol.data_received(requests)
        assert len(answers(transport)) == REQUESTS_PER_TURN and not transport.reading
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(answers(transport)) == 3 * REQUESTS_PER_TURN + 1 and transport.reading

    run(scenario)


def test_a_peer_that_does_not_read_is_not_read_from() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        request = b"GET /" + b"x" * 1000 + b" HTTP/1.1\r\n\r\n"
        sent = 0
        while transport.reading and sent < 10_000:
            protocol.data_received(request)
            sent += 1
            for _ in range(3):
                await asyncio.sleep(0)
        assert not transport.reading and sent < 1000
        transport.drain()  # it reads: requests are taken again
        for _ in range(3):
            await asyncio.sleep(0)
        assert transport.reading

    run(scenario)


def test_a_request_pipelined_behind_get_next_waits_for_the_invocation() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        protocol.data_received(NEXT + b"GET /after HTTP/1.1\r\n\r\n")
        assert answers(transport) == [] and not transport.reading
        env.channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
        await asyncio.sleep(0)
        assert [a.status for a in answers(transport)] == [200, 404] and transport.reading

    run(scenario)


# -- connections and memory across them --------------------------------------------------------------


def test_connections_past_the_cap_are_closed_at_once() -> None:
    async def scenario(env: Env) -> None:
        opened = [env.connect()[1] for _ in range(MAX_CONNECTIONS + 5)]
        assert [t.closing for t in opened] == [False] * MAX_CONNECTIONS + [True] * 5
        opened[0].close()
        await asyncio.sleep(0)
        assert not env.connect()[1].closing  # a slot that frees up can be used again

    run(scenario)


def test_bodies_held_together_stay_within_the_environments_budget() -> None:
    async def scenario(env: Env) -> None:
        size = MAX_REQUEST_BYTES - 100
        transports = []
        for _ in range(6):
            protocol, transport = env.connect()
            await feed(protocol, transport, b"POST " + API + b"invocation/rid/response HTTP/1.1\r\n"
                       b"Content-Length: %d\r\n\r\n" % size + b"b" * (size - 1))
            transports.append(transport)
            assert env.conns.buffered <= BUFFER_BUDGET + 65536
            await asyncio.sleep(0.15)  # let the work budget refill: this is about memory
        assert [t.closing for t in transports] == [False, False, True, True, True, True]
        assert all(refused(t, 413) for t in transports[2:])

    run(scenario)


def test_an_environment_over_its_work_budget_is_not_read_until_it_refills() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        env.conns.spend(WORK_BURST + WORK_RATE / 50)  # as after a flood: 20 ms of work overdrawn
        protocol.data_received(b"GET /x HTTP/1.1\r\n\r\n")
        assert [a.status for a in answers(transport)] == [404] and not transport.reading
        assert env.connect()[1].closing  # and new connections are refused meanwhile
        await asyncio.sleep(0.2)
        assert transport.reading and not env.connect()[1].closing

    run(scenario)


# -- clocks -------------------------------------------------------------------------------------------


def test_an_unfinished_request_times_out_with_408() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        protocol.data_received(b"GET /x HTTP/1.1\r\nX-Slow: ")
        now = asyncio.get_running_loop().time()
        assert protocol.check(now + REQUEST_TIMEOUT_S - 1, quiet=False, awake=True)
        protocol.data_received(b"more")  # trickling does not restart the clock
        assert not protocol.check(now + REQUEST_TIMEOUT_S + 0.1, quiet=False, awake=True)
        assert refused(transport, 408)

    run(scenario)


def test_a_parked_get_next_never_times_out() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        protocol.data_received(NEXT)
        now = asyncio.get_running_loop().time()
        for hours in range(1, 48):
            assert not protocol.check(now + hours * 3600, quiet=True, awake=True)
        assert not transport.closing and env.channel.parked

    run(scenario)


def test_an_idle_connection_counts_only_quiet_awake_time() -> None:
    async def scenario(env: Env) -> None:
        protocol, transport = env.connect()
        now = asyncio.get_running_loop().time()
        sweeps = int(IDLE_TIMEOUT_S / SWEEP_INTERVAL_S)
        # frozen (the runtime is parked) or serving an invocation: no time counts, however long
        for i in range(10 * sweeps):
            assert not protocol.check(now + i, quiet=False, awake=False)
        # awake but busy (the channel moved since the last sweep): the count starts over
        for i in range(sweeps - 1):
            protocol.check(now + i, quiet=True, awake=True)
        protocol.check(now, quiet=False, awake=True)
        for i in range(sweeps - 1):
            assert protocol.check(now + i, quiet=True, awake=True)
        assert not transport.closing
        assert not protocol.check(now, quiet=True, awake=True)
        assert transport.closing

    run(scenario)


def test_the_sweep_sees_a_quiet_awake_environment_only_when_nothing_happens() -> None:
    async def scenario(env: Env) -> None:
        channel = env.channel
        seen: list[tuple[bool, bool]] = []

        class Probe(RuntimeApiProtocol):
            def check(self, now: float, quiet: bool, awake: bool) -> bool:
                seen.append((quiet, awake))
                return True

        probe = Probe(channel, env.conns)
        probe.connection_made(FakeTransport(probe))
        env.conns.sweep()  # init: awake, and the first look is never quiet
        env.conns.sweep()  # nothing happened since: quiet
        runtime, _ = env.connect()
        runtime.data_received(NEXT)
        env.conns.sweep()  # parked: asleep (it may be frozen)
        channel.dispatch(Invocation("rid", b"{}", 0, "arn", "Root=1"))
        env.conns.sweep()  # serving an invocation: asleep
        assert seen == [(False, True), (True, True), (False, False), (False, False)]
        body = json.dumps({"ok": True}).encode()
        runtime.data_received(b"POST " + API + b"invocation/rid/response HTTP/1.1\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
        channel.finish()
        env.conns.sweep()  # answered and not yet back in GET /next: awake
        assert seen[-1] == (False, True)

    run(scenario)
