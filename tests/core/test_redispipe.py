"""The pipelined connection of the hot path: replies reach their own callers, in order,
through errors, cancellations, a hung server and a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.infra.redispipe import RedisPipe, pack, parse
from tests.redis_server import Proxy, RedisServer


@pytest.fixture
async def pipe(own_redis: RedisServer) -> AsyncIterator[RedisPipe]:
    instance = RedisPipe(own_redis.url, timeout=0.5)
    yield instance
    await instance.close()


def test_every_reply_kind_parses_from_any_split_of_its_bytes() -> None:
    replies = (
        b"*3\r\n:42\r\n$5\r\nhello\r\n$-1\r\n"
        b"+OK\r\n-ERR unknown command\r\n$0\r\n\r\n*0\r\n*2\r\n*1\r\n:1\r\n$2\r\n\r\n\r\n"
    )
    expected = [[42, b"hello", None], "OK", "ERR unknown command", b"", [], [[1], b"\r\n"]]
    for cut in range(len(replies) + 1):
        buffer, position, found = bytearray(replies[:cut]), 0, []
        for rest in (replies[cut:], b""):
            while True:
                value, after = parse(buffer, position)
                if after < 0:
                    break
                found.append(str(value) if isinstance(value, ResponseError) else value)
                position = after
            buffer += rest
        assert found == expected, cut


def test_commands_are_packed_as_arrays_of_bulk_strings() -> None:
    assert pack(("SET", b"k\r\n", 7)) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n7\r\n"


async def test_concurrent_calls_each_get_their_own_reply(pipe: RedisPipe) -> None:
    await asyncio.gather(*(pipe.call("SET", f"k{n}", n) for n in range(200)))
    values = await asyncio.gather(*(pipe.call("GET", f"k{n}") for n in range(200)))
    assert values == [str(n).encode() for n in range(200)]
    assert await pipe.call("INCRBY", "k7", 3) == 10


async def test_an_error_reply_raises_for_its_caller_only(pipe: RedisPipe) -> None:
    await pipe.call("SET", "a", "1")
    results = await asyncio.gather(
        pipe.call("GET", "a"),
        pipe.call("NOSUCHCOMMAND"),
        pipe.call("EVALSHA", "0" * 40, 0),
        pipe.call("GET", "a"),
        return_exceptions=True,
    )
    assert results[0] == results[3] == b"1"
    assert type(results[1]) is ResponseError
    assert isinstance(results[2], NoScriptError)


async def test_a_caller_that_leaves_does_not_shift_the_replies(pipe: RedisPipe) -> None:
    await pipe.call("SET", "a", "1")
    left = asyncio.create_task(pipe.call("GET", "a"))
    await asyncio.sleep(0)  # its command is queued ...
    left.cancel()  # ... and its caller gone before the reply
    assert await pipe.call("SET", "b", "2") == "OK"
    assert await pipe.call("GET", "b") == b"2"


async def test_the_database_of_the_url_is_selected(own_redis: RedisServer) -> None:
    pipe = RedisPipe(own_redis.url.removesuffix("/0") + "/3", timeout=0.5)
    redis = Redis.from_url(own_redis.url.removesuffix("/0") + "/3")
    try:
        await pipe.call("SET", "in-three", "yes")
        assert await redis.get("in-three") == b"yes"
    finally:
        await pipe.close()
        await redis.aclose()


async def test_a_hung_server_times_out_and_no_late_reply_reaches_a_later_call(
    proxy: Proxy,
) -> None:
    pipe = RedisPipe(proxy.url, timeout=0.2)
    try:
        await pipe.call("SET", "a", "old")
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            await pipe.call("GET", "a")
        proxy.restore()
        await pipe.call("SET", "a", "new")
        assert await pipe.call("GET", "a") == b"new"
        assert proxy.accepted == 2  # the connection of the lost reply was dropped
    finally:
        await pipe.close()


async def test_a_restarted_server_fails_the_waiting_calls_then_serves_again(
    own_redis: RedisServer,
) -> None:
    pipe = RedisPipe(own_redis.url, timeout=0.5)
    try:
        await pipe.call("SET", "a", "1")
        await own_redis.stop()
        with pytest.raises((RedisConnectionError, OSError)):
            await pipe.call("GET", "a")
        await own_redis.start()
        assert await pipe.call("GET", "a") is None  # no persistence: a new, empty server
        assert await pipe.call("SET", "a", "2") == "OK"
    finally:
        await pipe.close()


def test_it_runs_on_uvloop_as_the_service_does(own_redis: RedisServer) -> None:
    """Production serves on uvloop, whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def calls() -> list[object]:
        pipe = RedisPipe(own_redis.url, timeout=0.5)
        try:
            await pipe.call("SET", "on-uvloop", "1")
            return list(await asyncio.gather(*(pipe.call("GET", "on-uvloop") for _ in range(20))))
        finally:
            await pipe.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(calls()) == [b"1"] * 20
