"""The referral-code cache: Redis when `REDIS_URL` is set, else in-process, one interface.

A reader that misses gets a lease (what the key held: nothing, or a tombstone) and may `fill`
only while the key still holds exactly that. `invalidate` writes a fresh tombstone, so a reader
that loaded a row just before a write cannot put the old row back, while a reader that started
after the write fills at once. A live value is never overwritten; it ends by its TTL or an
invalidation. Values must not start with a NUL byte (the tombstone mark).

The cache is an optimisation: every failure reads as a miss, and Redis is skipped for a moment
after an error so an outage costs no latency. Invalidations that cannot reach Redis are kept and
delivered as soon as it answers again (before this process trusts it, and by a background retry
for the other processes); a process that saw the outage also ignores hits for a short grace
after it, the time the other processes need to deliver the invalidations they kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.infra import metrics
from core.infra.redispipe import RedisPipe

log = logging.getLogger(__name__)

TOMBSTONE = b"\x00"  # the mark; each tombstone is the mark and a random token
# How long a tombstone outlives its write: a reader slower than this could fill a stale row.
TOMBSTONE_SECONDS = 60.0
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
EMPTY = b""  # the lease of a key that held nothing


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache read: the value on a hit; on a miss, the lease a later `fill` must present
    (None when the cache cannot take a fill now)."""

    value: bytes | None
    lease: bytes | None = None


NO_FILL = Lookup(None)


class CodeCache(Protocol):
    async def lookup(self, key: str) -> Lookup: ...

    async def lookup_prefetched(self, key: str, raw: bytes | None) -> Lookup:
        """`lookup`, given what a call on the same Redis already read of `key` (the rate-limit
        check of a lookup reads its cache entry in the same round trip); a cache that keeps
        its entries elsewhere reads its own."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value on a hit, else None (for readers that will not fill)."""
        ...

    async def fill(self, key: str, value: bytes, ttl: float, *, lease: bytes | None) -> None:
        """Store `value` for `ttl` seconds if the key still holds what `lease` saw."""
        ...

    async def invalidate(self, *keys: str) -> None: ...

    async def status(self) -> str:
        """'ok', or 'degraded' when the cache cannot be reached (answers come from the DB)."""
        ...

    async def close(self) -> None: ...


def new_tombstone() -> bytes:
    return TOMBSTONE + os.urandom(8)


def _seen(raw: bytes | None) -> Lookup:
    if raw is None:
        return Lookup(None, EMPTY)
    if raw.startswith(TOMBSTONE):
        return Lookup(None, raw)
    return Lookup(raw)


def connect_redis(url: str, *, timeout: float) -> Redis:
    """A client that gives up fast: one attempt per command, every wait bounded by `timeout`."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=None,  # no retries: the database answers instead, which beats waiting
        health_check_interval=0,
        # RESP2: redis-py 8 speaks RESP3 with "maintenance notifications" on by default, which
        # turns off the pool's check for connections the server closed (so the first command
        # after a Redis restart fails) and may stretch timeouts to 10 s during maintenance.
        protocol=2,
    )


class MemoryCache:
    """Per-process cache: the embedded default for a single API process."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[str, tuple[float, bytes]] = {}  # key -> (monotonic deadline, raw)
        self._max_entries = max_entries

    async def lookup(self, key: str) -> Lookup:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= time.monotonic():
            del self._entries[key]
            entry = None
        return _seen(entry[1] if entry is not None else None)

    async def lookup_prefetched(self, key: str, raw: bytes | None) -> Lookup:
        return await self.lookup(key)  # what Redis held is not this process's entry

    async def get(self, key: str) -> bytes | None:
        return (await self.lookup(key)).value

    async def fill(self, key: str, value: bytes, ttl: float, *, lease: bytes | None) -> None:
        if ttl <= 0 or lease is None:
            return
        now = time.monotonic()
        entry = self._entries.get(key)
        live = entry[1] if entry is not None and entry[0] > now else EMPTY
        if live != lease:
            return
        if entry is not None:
            del self._entries[key]  # re-inserted at the end: eviction goes oldest first
        elif len(self._entries) >= self._max_entries and not self._evict(now):
            return  # full of tombstones: a skipped fill is only a miss
        self._entries[key] = (now + ttl, value)

    async def invalidate(self, *keys: str) -> None:
        deadline = time.monotonic() + TOMBSTONE_SECONDS
        for key in keys:
            self._entries.pop(key, None)
            self._entries[key] = (deadline, new_tombstone())

    async def status(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> bool:
        """Free a tenth of the room at once, so a full cache pays one scan per many fills."""
        for key in [k for k, (deadline, _) in self._entries.items() if deadline <= now]:
            del self._entries[key]
        excess = len(self._entries) - (self._max_entries - max(1, self._max_entries // 10))
        if excess > 0:
            # Oldest values first; tombstones stay, they are what refuses a stale fill.
            values = (k for k, (_, raw) in self._entries.items() if not raw.startswith(TOMBSTONE))
            for key in list(itertools.islice(values, excess)):
                del self._entries[key]
        return len(self._entries) < self._max_entries


# SET only if the key still holds what the reader saw (nothing, or that very tombstone).
_FILL_LUA = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisCache:
    """Shared cache for every API and bot process; fails open to the database."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        pause_after_error: float = 1.0,
        recovery_grace: float | None = None,
    ) -> None:
        # Reads, on the hot path, through one pipelined connection; the rest through redis-py.
        self._pipe = RedisPipe(url, timeout=timeout)
        self._redis = connect_redis(url, timeout=timeout)
        self._timeout = timeout
        self._pause_after_error = pause_after_error
        # Other processes retry their kept invalidations every `pause_after_error`.
        self._recovery_grace = 2 * pause_after_error if recovery_grace is None else recovery_grace
        self._down_until = 0.0  # Redis is not asked for reads or fills before this
        self._trusted_from = 0.0  # hits are ignored before this
        self._outage = False
        # Invalidations that could not reach Redis; delivered before the cache is trusted again.
        self._pending: set[str] = set()
        self._lock = asyncio.Lock()
        self._replayer: asyncio.Task[None] | None = None
        self.failures = 0  # Redis calls that failed or timed out: each cost at most one wait

    @property
    def client(self) -> Redis:
        return self._redis

    async def lookup(self, key: str) -> Lookup:
        if not await self._readable():
            return NO_FILL
        try:
            raw = await self._pipe.call("GET", key)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return NO_FILL
        return self._received(raw)

    async def lookup_prefetched(self, key: str, raw: bytes | None) -> Lookup:
        return self._received(raw) if await self._readable() else NO_FILL

    async def _readable(self) -> bool:
        return self._available() and (not self._pending or await self._replay_pending())

    def _received(self, raw: object) -> Lookup:
        self._succeeded()
        seen = _seen(raw if isinstance(raw, bytes) else None)
        if seen.value is not None and time.monotonic() < self._trusted_from:
            return NO_FILL  # maybe stale: another process may still owe it an invalidation
        return seen

    async def get(self, key: str) -> bytes | None:
        return (await self.lookup(key)).value

    async def fill(self, key: str, value: bytes, ttl: float, *, lease: bytes | None) -> None:
        ttl_ms = int(ttl * 1000)
        if lease is None or ttl_ms <= 0 or self._pending or not self._available():
            return
        try:
            async with asyncio.timeout(self._timeout):
                # EVAL, not EVALSHA: one round trip, even on a server that never saw the script.
                await self._redis.eval(_FILL_LUA, 1, key, lease, value, ttl_ms)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def invalidate(self, *keys: str) -> None:
        if not keys:
            return
        self._pending.update(keys)
        # Tried even while Redis is paused: a write's invalidation is worth one timeout.
        if not await self._replay_pending(even_if_paused=True):
            self._start_replayer()

    async def status(self) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.ping()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return "degraded"
        self._down_until = 0.0  # it answers: no need to sit out the pause
        if not await self._replay_pending():
            return "degraded"
        self._succeeded()
        return "ok"

    async def close(self) -> None:
        replayer, self._replayer = self._replayer, None
        if replayer is not None:
            replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replayer
        await self._pipe.close()
        await self._redis.aclose()

    def _available(self) -> bool:
        return self._down_until <= time.monotonic()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        metrics.outside_failures.labels("redis", type(exc).__name__).inc()
        if not self._outage:
            self._outage = True
            log.warning(
                "cache: Redis unavailable, serving from the database: %s: %s",
                type(exc).__name__,
                exc,
            )
        self._down_until = time.monotonic() + self._pause_after_error

    def _succeeded(self) -> None:
        if self._outage:
            self._outage = False
            self._trusted_from = time.monotonic() + self._recovery_grace
            log.warning("cache: Redis is back, using it again in %.1fs", self._recovery_grace)

    async def _replay_pending(self, *, even_if_paused: bool = False) -> bool:
        # One replay at a time, and nobody queues behind it: while one is in flight (Redis may
        # be hung), the others answer from the database at once instead of each waiting its
        # own timeout in turn.
        if self._lock.locked():
            return False
        async with self._lock:
            keys = list(self._pending)
            if not keys:
                return True
            if not (even_if_paused or self._available()):  # a failed replay started a pause
                return False
            try:
                async with asyncio.timeout(self._timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key in keys:
                            pipe.set(key, new_tombstone(), px=int(TOMBSTONE_SECONDS * 1000))
                        await pipe.execute()
            except REDIS_ERRORS as exc:
                self._failed(exc)
                return False
            self._pending.difference_update(keys)
        self._succeeded()
        return True

    def _start_replayer(self) -> None:
        """Deliver kept invalidations as soon as Redis is back, even if no request comes."""
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(self._replay_until_done())

    async def _replay_until_done(self) -> None:
        while self._pending:
            await asyncio.sleep(self._pause_after_error)
            await self._replay_pending()


def build_cache(redis_url: str | None, *, timeout: float) -> CodeCache:
    return RedisCache(redis_url, timeout=timeout) if redis_url else MemoryCache()
