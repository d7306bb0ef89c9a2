"""The limiter itself: GCRA semantics, alike in process and in Redis, and Redis failing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import socket
from collections.abc import AsyncIterator

import pytest

from core.infra import clock
from core.infra.errors import RateLimited
from core.infra.ratelimit import (
    Counters,
    Limit,
    Limits,
    MemoryCounters,
    Rate,
    RateLimiter,
    RedisCounters,
    account_key,
)
from tests.conftest import REDIS_URL
from tests.redis_server import RedisServer

BACKENDS = ["memory", "redis"] if REDIS_URL else ["memory"]
LIMITS = Limits(
    login=Limit("login", Rate(3, 60)),
    login_account_address=Limit("login_account_address", Rate(2, 300)),
    login_account=Limit("login_account", Rate(2, 300)),
    registration=Limit("registration", Rate(2, 3600)),
    lookup=Limit("lookup", Rate(5, 10)),
    password_reset=Limit("password_reset", Rate(2, 3600)),
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=BACKENDS)
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    instance: Counters
    if request.param == "redis":
        assert REDIS_URL
        # A prefix of its own: no other test's keys, nothing to clean up (keys expire).
        instance = RedisCounters(REDIS_URL, prefix=f"test-rl-{secrets.token_hex(4)}:")
    else:
        instance = MemoryCounters()
    yield instance
    await instance.close()


@pytest.fixture
def limiter(counters: Counters) -> RateLimiter:
    return RateLimiter(counters, limits=LIMITS)


async def outcomes(limiter: RateLimiter, *hits: tuple[Limit, str], times: int) -> list[int]:
    """Fire `times` checks at once; 0 for each allowed, Retry-After for each refused."""

    async def one() -> int:
        try:
            await limiter.check(*hits)
        except RateLimited as exc:
            return exc.retry_after
        return 0

    return list(await asyncio.gather(*(one() for _ in range(times))))


def waits(results: list[int], expected: int) -> bool:
    """Every refusal asks for `expected` seconds, or a second less once time has moved on."""
    return all(expected - 1 <= wait <= expected for wait in results if wait)


def test_rate_parse_and_spacing() -> None:
    rate = Rate.parse("10/60")
    assert rate == Rate(count=10, seconds=60)
    assert rate.interval_ms == 6000
    assert rate.burst_ms == 60_000
    assert Rate.parse("3/1").burst_ms == 3 * Rate.parse("3/1").interval_ms


async def test_exactly_the_limit_passes_under_concurrency(limiter: RateLimiter) -> None:
    results = await outcomes(limiter, (LIMITS.lookup, "203.0.113.1"), times=15)
    assert results.count(0) == 5
    # 5 per 10 s: the next request is possible 2 s later.
    assert waits(results, 2)


async def test_keys_and_limits_are_independent(limiter: RateLimiter) -> None:
    assert (await outcomes(limiter, (LIMITS.lookup, "a"), times=6)).count(0) == 5
    assert await outcomes(limiter, (LIMITS.lookup, "b"), times=5) == [0] * 5
    assert await outcomes(limiter, (LIMITS.registration, "a"), times=2) == [0, 0]


async def test_allowance_comes_back_with_time(limiter: RateLimiter) -> None:
    hit = (LIMITS.lookup, "203.0.113.2")
    assert (await outcomes(limiter, hit, times=6)).count(0) == 5
    with clock.shift(dt.timedelta(seconds=2)):  # one interval: one more request
        results = await outcomes(limiter, hit, times=2)
        assert results.count(0) == 1
        assert waits(results, 2)
    with clock.shift(dt.timedelta(seconds=12)):  # a whole window idle: the full burst
        assert (await outcomes(limiter, hit, times=6)).count(0) == 5


async def test_a_refused_request_counts_nowhere(limiter: RateLimiter) -> None:
    login = (LIMITS.login, "203.0.113.3")
    account = (LIMITS.login_account, account_key("ann@example.com"))
    assert await outcomes(limiter, login, account, times=2) == [0, 0]
    # The account is spent: both refused, and the address keeps its last attempt.
    results = await outcomes(limiter, login, account, times=2)
    assert results.count(0) == 0
    assert waits(results, 150)
    results = await outcomes(limiter, login, times=2)
    assert results.count(0) == 1
    assert waits(results, 20)


async def test_forget_restores_the_allowance(limiter: RateLimiter) -> None:
    account = account_key("  Ann@Example.com ")
    assert account == account_key("ann@example.com")
    hit = (LIMITS.login_account, account)
    results = await outcomes(limiter, hit, times=3)
    assert results.count(0) == 2
    assert waits(results, 150)
    await limiter.forget(LIMITS.login_account, account)
    assert await outcomes(limiter, hit, times=2) == [0, 0]


async def test_a_clock_going_back_waits_at_most_one_window(limiter: RateLimiter) -> None:
    """Counts from an hour ahead read as a burst used up now, not as an hour of refusals."""
    hit = (LIMITS.lookup, "203.0.113.4")
    with clock.shift(dt.timedelta(hours=1)):
        await outcomes(limiter, hit, times=5)
    waits = await outcomes(limiter, hit, times=3)
    assert waits[0] == 0
    assert 0 < waits[1] <= 10 + 2
    with clock.shift(dt.timedelta(seconds=12)):
        assert await outcomes(limiter, hit, times=1) == [0]


async def test_disabled_limiter_never_refuses() -> None:
    limiter = RateLimiter(None, limits=LIMITS)
    assert not limiter.enabled
    assert await outcomes(limiter, (LIMITS.login_account, "x"), times=50) == [0] * 50
    await limiter.forget(LIMITS.login_account, "x")
    await limiter.close()


async def test_redis_down_falls_back_to_counting_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters = RedisCounters(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2)
    limiter = RateLimiter(counters, limits=LIMITS)
    try:
        with caplog.at_level(logging.WARNING, logger="core.infra.ratelimit"):
            results = await outcomes(limiter, (LIMITS.lookup, "203.0.113.5"), times=8)
            await limiter.forget(LIMITS.lookup, "elsewhere")
        assert results.count(0) == 5
        assert waits(results, 2)
        unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1  # once per outage, not once per request
    finally:
        await limiter.close()


class CuttableProxy:
    """A TCP proxy to Redis that a test can cut and restore on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._pipes.update((writer, upstream_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self._pipes.difference_update((writer, upstream_writer))


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (make test-services)")
async def test_redis_outage_and_recovery() -> None:
    assert REDIS_URL
    from redis.asyncio import Redis

    real = Redis.from_url(REDIS_URL)
    port = real.connection_pool.connection_kwargs.get("port", 6379)
    db = real.connection_pool.connection_kwargs.get("db", 0)
    proxy = CuttableProxy(port)
    await proxy.start()
    prefix = f"test-rl-{secrets.token_hex(4)}:"
    counters = RedisCounters(
        f"redis://127.0.0.1:{proxy.port}/{db}", timeout=2, pause_after_error=0, prefix=prefix
    )
    limiter = RateLimiter(counters, limits=LIMITS)
    hit = (LIMITS.lookup, "203.0.113.6")
    try:
        assert await outcomes(limiter, hit, times=2) == [0, 0]
        assert await real.exists(f"{prefix}lookup:203.0.113.6")

        await proxy.cut()
        # Counted in process meanwhile: limited, never an error.
        assert (await outcomes(limiter, hit, times=6)).count(0) == 5

        await proxy.start()
        # Back on Redis, where the two earlier requests are still counted.
        assert (await outcomes(limiter, hit, times=5)).count(0) == 3
    finally:
        await limiter.close()
        await real.delete(f"{prefix}lookup:203.0.113.6")
        await real.aclose()
        with contextlib.suppress(AssertionError):
            await proxy.cut()


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (make test-services)")
async def test_a_check_is_one_redis_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    assert REDIS_URL
    counters = RedisCounters(REDIS_URL, prefix=f"test-rl-{secrets.token_hex(4)}:")
    limiter = RateLimiter(counters, limits=LIMITS)
    try:
        await limiter.check((LIMITS.lookup, "warm-up"))  # loads the script once
        commands: list[str] = []
        send, call = counters.client.execute_command, counters._pipe.call

        async def counting(*args: object, **options: object) -> object:
            commands.append(str(args[0]))
            return await send(*args, **options)

        async def counting_pipe(*args: str | bytes | int) -> object:
            commands.append(str(args[0]))
            return await call(*args)

        monkeypatch.setattr(counters.client, "execute_command", counting)
        monkeypatch.setattr(counters._pipe, "call", counting_pipe)
        await limiter.check((LIMITS.login, "203.0.113.7"), (LIMITS.login_account, "ann"))
        assert commands == ["EVALSHA"]
    finally:
        await limiter.close()


async def test_redis_counters_load_their_script_where_it_is_missing():
    """A new or restarted Redis knows no script: the first check loads it, and so does the
    first check after the server forgot it."""
    server = RedisServer()
    await server.start()
    counters = RedisCounters(server.url)
    try:
        limiter = RateLimiter(counters, limits=LIMITS)
        await limiter.check((LIMITS.lookup, "203.0.113.9"))  # the script is loaded here
        await counters.client.script_flush()  # a private server: nobody else's scripts
        for _ in range(4):  # the lookup allows 5 in 10 s: the 6th refusal proves the count
            await limiter.check((LIMITS.lookup, "203.0.113.9"))
        with pytest.raises(RateLimited):
            await limiter.check((LIMITS.lookup, "203.0.113.9"))
    finally:
        await counters.close()
        await server.stop()


async def test_a_hung_redis_costs_one_check_one_bound_then_counts_in_process() -> None:
    """A Redis that accepts and never answers: the check gives up after its bound, and the
    checks after it are counted in process without asking Redis again."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RateLimiter(
        RedisCounters(f"redis://127.0.0.1:{port}/0", timeout=0.2, pause_after_error=60),
        limits=LIMITS,
    )
    try:
        results = [
            (await outcomes(limiter, (LIMITS.lookup, "203.0.113.9"), times=1))[0] for _ in range(8)
        ]
        await limiter.check((LIMITS.login, "203.0.113.9"))
        assert results.count(0) == 5  # counted in process from the first check on
        assert len(accepted) == 1  # one attempt at Redis, cut by its bound
    finally:
        await limiter.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
