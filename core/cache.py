"""The referral-code cache: Redis when `REDIS_URL` is set, else in-process, one interface.

Entries are written only by `fill` (SET NX) and removed only by `invalidate`, which leaves a
short tombstone: a reader that loaded a row just before a write cannot put the old row back,
because its `fill` finds the tombstone. The cache is an optimisation: every failure reads as
a miss, and Redis is skipped for a moment after an error so an outage costs no latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

TOMBSTONE = b"\x00"
TOMBSTONE_SECONDS = 10


class CodeCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def fill(self, key: str, value: bytes, ttl: float) -> None: ...

    async def invalidate(self, *keys: str) -> None: ...

    async def status(self) -> str:
        """'ok', or 'degraded' when the cache cannot be reached (answers come from the DB)."""
        ...

    async def close(self) -> None: ...


class MemoryCache:
    """Per-process cache: the embedded default for a single API process."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._max_entries = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, value = entry
        if deadline <= time.monotonic():
            del self._entries[key]
            return None
        return None if value is TOMBSTONE else value

    async def fill(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():  # live value or tombstone
            return
        if len(self._entries) >= self._max_entries:
            self._evict()
        self._entries[key] = (time.monotonic() + ttl, value)

    async def invalidate(self, *keys: str) -> None:
        deadline = time.monotonic() + TOMBSTONE_SECONDS
        for key in keys:
            self._entries[key] = (deadline, TOMBSTONE)

    async def status(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._entries.clear()

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (deadline, _) in self._entries.items() if deadline <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:  # still full: drop the oldest inserts
            del self._entries[next(iter(self._entries))]


class RedisCache:
    """Shared cache for every API and bot process; fails open to the database."""

    def __init__(self, url: str, *, timeout: float = 0.25, pause_after_error: float = 1.0) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=None,
            health_check_interval=0,
        )
        self._pause_after_error = pause_after_error
        self._down_until = 0.0
        # Invalidations that could not reach Redis; replayed before the cache is trusted again.
        self._pending: set[str] = set()
        self._lock = asyncio.Lock()

    @property
    def client(self) -> Redis:
        return self._redis

    def _available(self) -> bool:
        return self._down_until <= time.monotonic()

    def _failed(self, exc: Exception) -> None:
        if self._available():
            log.warning("cache unavailable, serving from the database: %r", exc)
        self._down_until = time.monotonic() + self._pause_after_error

    async def get(self, key: str) -> bytes | None:
        if self._pending:
            if not await self._replay_pending():
                return None
        elif not self._available():
            return None
        try:
            value: bytes | None = await self._redis.get(key)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return None
        return None if value == TOMBSTONE else value

    async def fill(self, key: str, value: bytes, ttl: float) -> None:
        if ttl < 1 or self._pending or not self._available():
            return
        try:
            await self._redis.set(key, value, ex=int(ttl), nx=True)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)

    async def invalidate(self, *keys: str) -> None:
        if not keys:
            return
        self._pending.update(keys)
        await self._replay_pending(force=True)

    async def status(self) -> str:
        try:
            await self._redis.ping()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return "degraded"
        if self._pending and not await self._replay_pending(force=True):
            return "degraded"
        self._down_until = 0.0
        return "ok"

    async def close(self) -> None:
        await self._redis.aclose()

    async def _replay_pending(self, *, force: bool = False) -> bool:
        if not force and not self._available():
            return False
        async with self._lock:
            keys = list(self._pending)
            if not keys:
                return True
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.set(key, TOMBSTONE, ex=TOMBSTONE_SECONDS)
                    await pipe.execute()
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._failed(exc)
                return False
            self._pending.difference_update(keys)
            return True


def build_cache(redis_url: str | None, *, timeout: float) -> CodeCache:
    return RedisCache(redis_url, timeout=timeout) if redis_url else MemoryCache()
