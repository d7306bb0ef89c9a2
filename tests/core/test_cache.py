"""The cache's own semantics, the same for MemoryCache and RedisCache (against a private
redis-server), plus how RedisCache behaves when Redis is dead, hung or restarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from core.infra import cache as cache_module
from core.infra.cache import EMPTY, TOMBSTONE, CodeCache, Lookup, MemoryCache, RedisCache
from tests.redis_server import Proxy, RedisServer, free_port

TIMEOUT = 0.25
PAUSE = 0.2


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()


def redis_cache(url: str) -> RedisCache:
    return RedisCache(url, timeout=TIMEOUT, pause_after_error=PAUSE, recovery_grace=0)


@pytest.fixture(params=["memory", "redis"])
async def cache(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[CodeCache]:
    instance: CodeCache
    if request.param == "memory":
        instance = MemoryCache()
    else:
        instance = redis_cache(redis_server.url)
        await instance.client.flushdb()
    yield instance
    await instance.close()


def is_tombstone(raw: object) -> bool:
    return isinstance(raw, bytes) and raw.startswith(TOMBSTONE)


async def read_then_fill(cache: CodeCache, key: str, value: bytes, ttl: float = 60) -> None:
    """What the service does on a miss: look up, load, fill with the lease it got."""
    seen = await cache.lookup(key)
    await cache.fill(key, value, ttl, lease=seen.lease)


# -- what every cache does ---------------------------------------------------------------


async def test_a_miss_then_a_fill_then_a_hit(cache: CodeCache):
    assert await cache.lookup("k") == Lookup(None, EMPTY)
    assert await cache.get("k") is None
    await read_then_fill(cache, "k", b"v")
    assert await cache.lookup("k") == Lookup(b"v")
    assert await cache.get("k") == b"v"
    assert await cache.status() == "ok"


async def test_a_live_value_is_never_overwritten(cache: CodeCache):
    await read_then_fill(cache, "k", b"first")
    await read_then_fill(cache, "k", b"second")
    await cache.fill("k", b"third", 60, lease=EMPTY)
    assert await cache.get("k") == b"first"


async def test_a_fill_racing_an_invalidation_is_refused(cache: CodeCache):
    # A reader misses and loads the row; a write commits and invalidates; the reader's fill
    # would put the old row back, and is refused.
    empty = await cache.lookup("a")
    await read_then_fill(cache, "b", b"cached")
    await cache.invalidate("a", "b")
    await cache.fill("a", b"old", 60, lease=empty.lease)
    await cache.fill("b", b"old", 60, lease=EMPTY)
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    # Same for a reader that had seen an earlier tombstone.
    await cache.invalidate("c")
    tombstone = await cache.lookup("c")
    await cache.invalidate("c")
    await cache.fill("c", b"old", 60, lease=tombstone.lease)
    assert await cache.get("c") is None


async def test_a_reader_that_starts_after_the_invalidation_fills_at_once(cache: CodeCache):
    await read_then_fill(cache, "k", b"old")
    await cache.invalidate("k")
    seen = await cache.lookup("k")
    assert seen.value is None
    assert seen.lease is not None
    assert seen.lease.startswith(TOMBSTONE)
    await cache.fill("k", b"new", 60, lease=seen.lease)
    assert await cache.get("k") == b"new"


async def test_invalidating_nothing_is_harmless(cache: CodeCache):
    await read_then_fill(cache, "k", b"v")
    await cache.invalidate()
    assert await cache.get("k") == b"v"


async def test_a_fill_without_time_left_or_a_lease_is_skipped(cache: CodeCache):
    await read_then_fill(cache, "k", b"v", 0)
    await read_then_fill(cache, "k2", b"v", -5)
    await cache.fill("k3", b"v", 60, lease=None)
    for key in ("k", "k2", "k3"):
        assert await cache.get(key) is None


async def test_a_tombstone_ends(cache: CodeCache, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cache_module, "TOMBSTONE_SECONDS", 0.05)
    await cache.invalidate("k")
    stale = await cache.lookup("k")
    await asyncio.sleep(0.1)  # cache entries age on the real clock, not the service clock
    assert await cache.lookup("k") == Lookup(None, EMPTY)
    await cache.fill("k", b"late", 60, lease=stale.lease)  # the key changed since
    assert await cache.get("k") is None


# -- MemoryCache ---------------------------------------------------------------------------


async def test_memory_entries_end_after_their_ttl():
    cache = MemoryCache()
    await read_then_fill(cache, "k", b"v", 0.05)
    assert await cache.get("k") == b"v"
    await asyncio.sleep(0.1)
    assert await cache.get("k") is None
    await read_then_fill(cache, "k", b"again")  # an ended entry no longer blocks a fill
    assert await cache.get("k") == b"again"


async def test_memory_cache_stays_within_its_bound_and_drops_the_oldest_first():
    cache = MemoryCache(max_entries=10)
    for n in range(100):
        await read_then_fill(cache, f"k{n}", b"v")
        assert len(cache) <= 10
    assert await cache.get("k99") == b"v"
    assert await cache.get("k0") is None


async def test_memory_eviction_keeps_tombstones():
    cache = MemoryCache(max_entries=10)
    slow_reader = await cache.lookup("gone")
    await cache.invalidate("gone")
    for n in range(50):
        await read_then_fill(cache, f"k{n}", b"v")
    await cache.fill("gone", b"stale", 60, lease=slow_reader.lease)
    assert await cache.get("gone") is None


async def test_memory_cache_full_of_tombstones_skips_fills():
    cache = MemoryCache(max_entries=5)
    await cache.invalidate(*(f"t{n}" for n in range(5)))
    await read_then_fill(cache, "k", b"v")
    assert await cache.get("k") is None
    assert len(cache) == 5


# -- RedisCache ----------------------------------------------------------------------------


async def test_redis_entries_carry_the_ttl_and_tombstones_a_short_one(redis_server: RedisServer):
    cache = redis_cache(redis_server.url)
    try:
        await cache.client.flushdb()
        await read_then_fill(cache, "k", b"v", 42.9)
        assert 42_000 < await cache.client.pttl("k") <= 42_900
        await read_then_fill(cache, "short", b"v", 0.3)
        assert 0 < await cache.client.pttl("short") <= 300
        await cache.invalidate("k")
        assert is_tombstone(await cache.client.get("k"))
        assert 0 < await cache.client.pttl("k") <= cache_module.TOMBSTONE_SECONDS * 1000
    finally:
        await cache.close()


async def test_redis_down_reads_as_a_miss_at_once():
    cache = redis_cache(f"redis://127.0.0.1:{free_port()}/0")
    try:
        started = time.monotonic()
        assert await cache.lookup("k") == Lookup(None, None)
        await cache.fill("k", b"v", 60, lease=EMPTY)
        await cache.invalidate("k")
        assert await cache.status() == "degraded"
        assert time.monotonic() - started < 4 * TIMEOUT
    finally:
        await cache.close()


async def test_a_hung_redis_costs_one_timeout_and_one_attempt(proxy: Proxy):
    """`retry=None` really means one attempt, and every call is bounded by the timeout."""
    cache = redis_cache(proxy.url)
    try:
        proxy.blackhole()
        started = time.monotonic()
        assert await cache.get("k") is None
        assert time.monotonic() - started < TIMEOUT + 0.25
        assert proxy.accepted == 1  # no second connection: no retry
        # Paused after the error: the next reads and fills do not wait on Redis at all.
        started = time.monotonic()
        for _ in range(5):
            assert await cache.get("k") is None
            await cache.fill("k", b"v", 60, lease=EMPTY)
        assert time.monotonic() - started < 0.1
        assert proxy.accepted == 1
        started = time.monotonic()
        assert await cache.status() == "degraded"
        assert time.monotonic() - started < TIMEOUT + 0.25
    finally:
        await cache.close()


async def test_a_slow_but_answering_redis_is_used(proxy: Proxy):
    cache = redis_cache(proxy.url)
    try:
        proxy.delay = TIMEOUT / 6  # a new connection needs two round trips
        await read_then_fill(cache, "k", b"v")
        assert await cache.get("k") == b"v"
        assert await cache.status() == "ok"
    finally:
        await cache.close()


async def test_the_client_reconnects_after_a_restart_without_a_failed_command(
    own_redis: RedisServer,
):
    cache = redis_cache(own_redis.url)
    try:
        await read_then_fill(cache, "k", b"v")
        assert await cache.get("k") == b"v"  # a pooled connection now exists
        await own_redis.stop()
        await own_redis.start()
        await asyncio.sleep(0.05)  # the event loop notices the closed connection
        # The pool replaces the dead connection itself: the first command already works.
        assert await cache.lookup("k") == Lookup(None, EMPTY)
        await cache.fill("k", b"again", 60, lease=EMPTY)
        assert await cache.get("k") == b"again"
    finally:
        await cache.close()


async def test_invalidations_kept_during_an_outage_are_delivered_first(proxy: Proxy):
    """Redis kept its data through the outage: the stale entry must not come back."""
    cache = redis_cache(proxy.url)
    try:
        await read_then_fill(cache, "k", b"old")
        proxy.cut()
        await cache.invalidate("k")
        assert await cache.get("k") is None
        proxy.restore()
        await asyncio.sleep(PAUSE)
        assert await cache.get("k") is None  # the tombstone went in before the read
        assert is_tombstone(await cache.client.get("k"))
        assert await cache.status() == "ok"
    finally:
        await cache.close()


async def test_kept_invalidations_are_delivered_without_any_request(proxy: Proxy):
    """A process that stays idle after the outage still clears what it changed during it."""
    cache = redis_cache(proxy.url)
    other = redis_cache(proxy.url)
    try:
        await read_then_fill(cache, "k", b"old")
        proxy.cut()
        await cache.invalidate("k")
        proxy.restore()
        deadline = time.monotonic() + 10 * PAUSE
        while not is_tombstone(await other.client.get("k")):
            assert time.monotonic() < deadline, "the kept invalidation was never delivered"
            await asyncio.sleep(PAUSE / 4)
    finally:
        await cache.close()
        await other.close()


async def test_a_process_that_saw_the_outage_waits_before_trusting_hits(proxy: Proxy):
    """Other processes need a moment to deliver what they kept: hits wait out a grace."""
    cache = RedisCache(proxy.url, timeout=TIMEOUT, pause_after_error=PAUSE, recovery_grace=0.3)
    try:
        await read_then_fill(cache, "k", b"v")
        proxy.cut()
        assert await cache.get("k") is None
        proxy.restore()
        await asyncio.sleep(PAUSE)
        assert await cache.status() == "ok"
        assert await cache.get("k") is None  # reachable, not trusted yet
        await asyncio.sleep(0.35)
        assert await cache.get("k") == b"v"
    finally:
        await cache.close()
