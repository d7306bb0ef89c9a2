"""Cache hits of `GET /api/v1/referral-codes?email=` served before FastAPI's routing.

The lookup is the service's hottest path, and a hit is one cache read: routing through the
nested routers and solving dependencies would cost more than the read itself. Anything that
is not a plain cache hit (a miss, another query shape) falls through to the FastAPI route,
which stays the one documented, authoritative implementation.

The lookup's rate limit is checked here, before the cache, so a hit is limited like any other
request; when the counters and the cache share Redis, one script does both in one round trip.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import domain_error_handler
from api.ratelimit import LOOKUP_COUNTED, client_address
from core.cache import RedisCache
from core.container import Core
from core.errors import RateLimited
from core.ratelimit import Prefetch
from core.referrals.service import CACHE_HITS, read_cache_entry

LOOKUP_PATH = "/api/v1/referral-codes"
_HEADERS = [(b"content-type", b"application/json")]


class CachedLookup:
    def __init__(self, app: ASGIApp, core: Core) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != LOOKUP_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        email = _plain_email(scope["query_string"])
        key = self.core.referrals.email_cache_key(email) if email else None
        try:
            prefetch = await self._count(scope, key)
        except RateLimited as exc:
            response = await domain_error_handler(Request(scope), exc)
            await response(scope, receive, send)
            return
        if key is not None and (body := await self._cached(key, prefetch)) is not None:
            CACHE_HITS.inc()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    async def _count(self, scope: Scope, key: str | None) -> Prefetch | None:
        """Count the lookup (the route then knows not to count it again); with counters in
        the cache's Redis, read the cache entry in the same round trip."""
        limiter = self.core.limiter
        if not limiter.enabled:
            return None
        scope[LOOKUP_COUNTED] = True
        hit = (limiter.limits.lookup, client_address(Request(scope), limiter.trusted_proxies))
        if key is not None and isinstance(self.core.cache, RedisCache):
            return await limiter.check_and_get(hit, redis_key=key)
        await limiter.check(hit)
        return None

    async def _cached(self, key: str, prefetch: Prefetch | None) -> bytes | None:
        cache = self.core.cache
        if prefetch is not None and isinstance(cache, RedisCache):
            entry = (await cache.lookup_prefetched(prefetch.value)).value
        else:
            entry = await cache.get(key)
        return read_cache_entry(entry) if entry is not None else None


def _plain_email(query: bytes) -> str | None:
    """The email of the plain query `email=<value>`; other shapes take the slow path."""
    if not query.startswith(b"email=") or b"&" in query:
        return None
    try:
        return unquote_plus(query[6:].decode("ascii"), errors="strict") or None
    except (UnicodeDecodeError, ValueError):
        return None
