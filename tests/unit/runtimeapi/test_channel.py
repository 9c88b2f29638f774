"""The Runtime API channel hands each invocation to exactly one `GET /next`, in order."""

import asyncio

from lamina.runtimeapi.channel import Invocation, NextWaiter, RuntimeChannel, RuntimeReply


class Recorder(NextWaiter):
    def __init__(self) -> None:
        self.got: list[Invocation] = []

    def deliver(self, invocation: Invocation) -> None:
        self.got.append(invocation)


def _inv(rid: str) -> Invocation:
    return Invocation(rid, b"{}", 0, "arn", "Root=1")


def test_dispatch_to_parked_runtime_and_reply() -> None:
    async def scenario() -> None:
        parks: list[bool] = []
        channel = RuntimeChannel(on_next=parks.append)
        waiter = Recorder()
        channel.next(waiter)
        assert parks == [True] and channel.parked
        future = channel.dispatch(_inv("a"))
        assert [i.request_id for i in waiter.got] == ["a"] and not channel.parked
        assert not channel.reply("other", RuntimeReply(True, b"x"))
        assert channel.reply("a", RuntimeReply(True, b"ok"))
        assert (await future).body == b"ok"
        channel.finish()
        channel.next(waiter)
        assert parks == [True, False]

    asyncio.run(scenario())


def test_dispatch_before_next_is_queued() -> None:
    async def scenario() -> None:
        channel = RuntimeChannel()
        future = channel.dispatch(_inv("q"))
        waiter = Recorder()
        channel.next(waiter)
        assert [i.request_id for i in waiter.got] == ["q"]
        channel.fail(RuntimeReply(False, b"dead", "Runtime.ExitError"))
        assert (await future).error_type == "Runtime.ExitError"

    asyncio.run(scenario())


def test_init_error_is_reported() -> None:
    seen: list[bool] = []
    channel = RuntimeChannel(on_init_error=lambda: seen.append(True))
    channel.report_init_error(RuntimeReply(False, b"{}", "Runtime.ImportModuleError"))
    assert seen == [True] and channel.init_error is not None
