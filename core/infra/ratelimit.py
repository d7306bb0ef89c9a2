"""Rate limits: GCRA counters in Redis when `REDIS_URL` is set, else in-process, one interface.

A rate "<count>/<seconds>" lets a key make `count` requests at once, then one more every
`seconds / count`; a key left alone for `seconds` has its whole allowance back. GCRA keeps
one small record per key (the "theoretical arrival time"), so a check is one atomic Lua script
in Redis (one round trip) and one dict update in process. A request is counted when it is
checked, before any work is done; a refused request counts for nothing.

Redis failing or slow never fails a request: the limiter falls back to its in-process
counters (logged once per outage) and tries Redis again after a short pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from core.infra import clock, metrics
from core.infra.cache import connect_redis
from core.infra.emails import folded, normalize_email
from core.infra.errors import InvalidInput, RateLimited
from core.infra.redispipe import RedisPipe
from core.infra.settings import RateLimitSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        count, _, seconds = text.partition("/")
        return cls(count=int(count), seconds=int(seconds))

    @property
    def interval_ms(self) -> int:
        """Milliseconds one request adds to its key; whole numbers keep Redis and Python equal."""
        return max(1, round(self.seconds * 1000 / self.count))

    @property
    def burst_ms(self) -> int:
        return self.interval_ms * self.count


@dataclass(frozen=True, slots=True)
class Limit:
    """A named rate; the name keeps the keys of different limits apart."""

    name: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class Limits:
    login: Limit
    login_account_address: Limit
    login_account: Limit
    registration: Limit
    lookup: Limit
    password_reset: Limit

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> Limits:
        return cls(
            login=Limit("login", Rate.parse(settings.login)),
            login_account_address=Limit(
                "login_account_address", Rate.parse(settings.login_account_address)
            ),
            login_account=Limit("login_account", Rate.parse(settings.login_account)),
            registration=Limit("registration", Rate.parse(settings.registration)),
            lookup=Limit("lookup", Rate.parse(settings.lookup)),
            password_reset=Limit("password_reset", Rate.parse(settings.password_reset)),
        )


Hit = tuple[Limit, str]


@dataclass(frozen=True, slots=True)
class Prefetch:
    """A Redis value read along with a rate-limit check (None: the key was absent)."""

    value: bytes | None


class Counters(Protocol):
    async def acquire(self, hits: Sequence[Hit], now_ms: int) -> int:
        """Count one request against every hit, or none if any is over its limit.

        Returns 0 when allowed, else the milliseconds until the request would be.
        """
        ...

    async def forget(self, limit: Limit, key: str) -> None: ...

    async def close(self) -> None: ...


# Requests that race can reach the counter out of order, each with the time its process read
# a moment before; a key's time therefore never goes back, except by more than this (a clock
# that was set back), so that a bad clock delays a client by at most one window.
MAX_SKEW_MS = 1000

State = tuple[int, int]  # (theoretical arrival time, latest time seen), in ms


def _gcra(state: State | None, rate: Rate, now_ms: int) -> tuple[State, int]:
    """(new state, wait in ms: 0 when allowed)."""
    tat, seen = state or (0, 0)
    now = max(now_ms, min(seen, now_ms + MAX_SKEW_MS))
    burst = rate.burst_ms
    # A time from further ahead than one whole burst (a clock set back) counts as a burst used
    # up, not as a debt that would refuse the key until the clock caught up.
    if tat > now + burst:
        tat = now + burst - rate.interval_ms
    new_tat = max(tat, now) + rate.interval_ms
    return (new_tat, now), max(0, new_tat - burst - now)


class MemoryCounters:
    """Per-process counters: the default for one API process, and Redis's stand-in."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._states: dict[str, State] = {}
        self._max_keys = max_keys

    async def acquire(self, hits: Sequence[Hit], now_ms: int) -> int:
        # No await between read and write: atomic on the event loop.
        updates = []
        wait = 0
        for limit, key in hits:
            full_key = f"{limit.name}:{key}"
            state, key_wait = _gcra(self._states.get(full_key), limit.rate, now_ms)
            updates.append((full_key, state))
            wait = max(wait, key_wait)
        if wait:
            return wait
        if len(self._states) + len(updates) > self._max_keys:
            self._evict(now_ms)
        for full_key, state in updates:
            self._states.pop(full_key, None)  # re-insert: the dict order is last use
            self._states[full_key] = state
        return 0

    async def forget(self, limit: Limit, key: str) -> None:
        self._states.pop(f"{limit.name}:{key}", None)

    async def close(self) -> None:
        self._states.clear()

    def _evict(self, now_ms: int) -> None:
        # A key whose arrival time has passed is back to a full allowance: same as absent.
        for key in [k for k, (tat, _) in self._states.items() if tat <= now_ms]:
            del self._states[key]
        while len(self._states) >= self._max_keys:  # still full: forget the least recently used
            del self._states[next(iter(self._states))]


# KEYS: one hash per limit (t: theoretical arrival time, n: latest time seen), then at most
# one plain key to read back when the request is allowed (a cache entry: one round trip for
# both). ARGV: now, max skew, the number of limit keys, then interval and burst for each
# limit; all times in ms. `_gcra` in Lua: all limits are checked before any is written, so a
# refused request counts nowhere. Returns {wait, value of the extra key or nil}.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local max_skew = tonumber(ARGV[2])
local limits = tonumber(ARGV[3])
local states = {}
local wait = 0
for i = 1, limits do
  local key = KEYS[i]
  local interval = tonumber(ARGV[2 * i + 2])
  local burst = tonumber(ARGV[2 * i + 3])
  local state = redis.call('HMGET', key, 't', 'n')
  local tat = tonumber(state[1]) or 0
  local key_now = math.max(now, math.min(tonumber(state[2]) or 0, now + max_skew))
  if tat > key_now + burst then
    tat = key_now + burst - interval
  end
  local new_tat = math.max(tat, key_now) + interval
  states[i] = {new_tat, key_now}
  wait = math.max(wait, new_tat - burst - key_now)
end
if wait > 0 then
  return {wait, false}
end
for i = 1, limits do
  redis.call('HSET', KEYS[i], 't', states[i][1], 'n', states[i][2])
  redis.call('PEXPIRE', KEYS[i], states[i][1] - states[i][2])
end
if #KEYS > limits then
  return {0, redis.call('GET', KEYS[limits + 1])}
end
return {0, false}
"""

_REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisCounters:
    """Counters shared by every API process; the in-process ones stand in while Redis is down."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        pause_after_error: float = 1.0,
        prefix: str = "ratelimit:",
    ) -> None:
        # The script, on every counted request, through one pipelined connection; the rest
        # (loading the script, forgetting a key) through redis-py.
        self._pipe = RedisPipe(url, timeout=timeout)
        self._redis = connect_redis(url, timeout=timeout)
        self._sha = hashlib.sha1(_GCRA_LUA.encode()).hexdigest()  # noqa: S324 (Redis's id)
        self._prefix = prefix
        self._fallback = MemoryCounters()
        self._pause_after_error = pause_after_error
        self._down_until = 0.0
        self._failed_at = 0.0
        self._down = False

    @property
    def client(self) -> Redis:
        return self._redis

    async def acquire(self, hits: Sequence[Hit], now_ms: int) -> int:
        wait, _ = await self.acquire_and_get(hits, now_ms, None)
        return wait

    async def acquire_and_get(
        self, hits: Sequence[Hit], now_ms: int, key: str | None
    ) -> tuple[int, Prefetch | None]:
        """`acquire`, and when allowed, the value of Redis key `key` read in the same round
        trip; the prefetch is None when Redis was not asked (down: counted in process)."""
        if self._down_until > time.monotonic():
            return await self._fallback.acquire(hits, now_ms), None
        keys = [f"{self._prefix}{limit.name}:{hit_key}" for limit, hit_key in hits]
        if key is not None:
            keys.append(key)
        args: list[int] = [now_ms, MAX_SKEW_MS, len(hits)]
        for limit, _ in hits:
            args += (limit.rate.interval_ms, limit.rate.burst_ms)
        started = time.monotonic()
        try:
            wait, value = await self._run_script(keys, args)
        except _REDIS_ERRORS as exc:
            self._failed(exc)
            return await self._fallback.acquire(hits, now_ms), None
        # A call that was answered before the failure was seen proves nothing about after it.
        if self._down and started > self._failed_at:
            self._down = False
            log.warning("rate limits: Redis is back, counting there again")
        return int(wait), (Prefetch(value) if key is not None else None)

    async def _run_script(self, keys: list[str], args: list[int]) -> list[Any]:
        """The limits script by its SHA (EVALSHA), loaded first on a server that lacks it."""
        try:
            reply = await self._pipe.call("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:
            self._sha = await self._redis.script_load(_GCRA_LUA)
            reply = await self._pipe.call("EVALSHA", self._sha, len(keys), *keys, *args)
        return list(reply)

    async def forget(self, limit: Limit, key: str) -> None:
        await self._fallback.forget(limit, key)
        if self._down_until > time.monotonic():
            return
        try:
            await self._redis.delete(f"{self._prefix}{limit.name}:{key}")
        except _REDIS_ERRORS as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._fallback.close()
        await self._pipe.close()
        await self._redis.aclose()

    def _failed(self, exc: BaseException) -> None:
        metrics.outside_failures.labels("redis", type(exc).__name__).inc()
        if not self._down:
            self._down = True
            log.warning("rate limits: Redis unavailable, counting in process: %r", exc)
        self._failed_at = time.monotonic()
        self._down_until = self._failed_at + self._pause_after_error


class RateLimiter:
    """Checks requests against the configured limits; does nothing when rate limiting is off."""

    def __init__(
        self,
        counters: Counters | None,
        *,
        limits: Limits,
    ) -> None:
        self._counters = counters
        self.enabled = counters is not None
        self.limits = limits

    @classmethod
    def disabled(cls) -> RateLimiter:
        return cls(None, limits=Limits.from_settings(RateLimitSettings.model_construct()))

    async def check(self, *hits: Hit) -> None:
        """Count one request against each (limit, key); raise `RateLimited` if any is over."""
        if self._counters is None or not hits:
            return
        wait_ms = await self._counters.acquire(hits, int(clock.timestamp() * 1000))
        if wait_ms > 0:
            _refused(hits)
            raise RateLimited(retry_after=math.ceil(wait_ms / 1000))

    async def check_and_get(self, hit: Hit, *, redis_key: str) -> Prefetch | None:
        """`check`, and the value of `redis_key` read in the same Redis round trip when the
        counters live in Redis (the same server as the cache); None when it was not read."""
        if not isinstance(self._counters, RedisCounters):
            await self.check(hit)
            return None
        now_ms = int(clock.timestamp() * 1000)
        wait_ms, prefetch = await self._counters.acquire_and_get((hit,), now_ms, redis_key)
        if wait_ms > 0:
            _refused((hit,))
            raise RateLimited(retry_after=math.ceil(wait_ms / 1000))
        return prefetch

    async def forget(self, limit: Limit, key: str) -> None:
        """Give `key` its whole allowance back (a successful login clears its failures)."""
        if self._counters is not None:
            await self._counters.forget(limit, key)

    async def close(self) -> None:
        if self._counters is not None:
            await self._counters.close()


def _refused(hits: Sequence[Hit]) -> None:
    for limit, _ in hits:
        metrics.rate_limit_refusals.labels(limit.name).inc()


def account_key(username: str) -> str:
    """The per-account key of a login name: normalised like the login (so every spelling of
    one address shares a count), hashed to bound its size."""
    try:
        name = normalize_email(username)
    except InvalidInput:
        name = folded(username)
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def build_counters(settings: Settings) -> Counters:
    """Counters in Redis when it is configured (shared by every process), else in this one."""
    if settings.redis_url:
        return RedisCounters(settings.redis_url, timeout=settings.cache.redis_timeout_seconds)
    return MemoryCounters()


def build_limiter(settings: Settings) -> RateLimiter:
    config = settings.rate_limit
    limits = Limits.from_settings(config)
    if not config.enabled:
        return RateLimiter(None, limits=limits)
    return RateLimiter(build_counters(settings), limits=limits)
