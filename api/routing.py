"""The route class of every router: what a route declares about itself, applied before FastAPI
reads the body or solves a dependency.

- `per_address(pick)`: a per-client-address limit counted before the body is read. FastAPI
  parses the body before it solves any dependency, so a limit written as a dependency never
  counts a malformed body: a client could send junk for free.
- `cached_read(key)`: a public read answered from the core's cache of its finished JSON. A hit
  runs no SQL, no validation, no dependency solving and no serialisation; its rate limit and
  the cache read are one Redis round trip when both live in Redis. A miss goes on to the
  route, which is the one documented implementation and fills the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

from api.errors import domain_error_handler
from api.ratelimit import LOOKUP_COUNTED, client_address
from core.container import Core
from core.errors import RateLimited
from core.ratelimit import Limit, Limits

PickLimit = Callable[[Limits], Limit]
# (core, request) -> the cache key of what this request reads, or None: not cacheable.
CacheKey = Callable[[Core, Request], str | None]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_PER_ADDRESS = "__rate_limit_per_address__"
_CACHED_READ = "__cached_read__"


def per_address(pick: PickLimit) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint as limited per client address, counted before its body is read."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _PER_ADDRESS, pick)
        return endpoint

    return mark


def cached_read(key: CacheKey, *, limit: PickLimit | None = None) -> Callable[[Endpoint], Endpoint]:
    """Mark a public read whose answer is the core's cached JSON under `key`; `limit` is
    counted on every request, hit or miss."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _CACHED_READ, (key, limit))
        return endpoint

    return mark


class ServiceRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        pick: PickLimit | None = getattr(self.endpoint, _PER_ADDRESS, None)
        if pick is not None:
            handler = _counted(handler, pick)
        cached = getattr(self.endpoint, _CACHED_READ, None)
        if cached is not None:
            handler = _from_cache(handler, *cached)
        return handler


def _counted(handler: Handler, pick: PickLimit) -> Handler:
    async def counted(request: Request) -> Response:
        limiter = request.app.state.core.limiter
        if limiter.enabled:
            address = client_address(request, limiter.trusted_proxies)
            await limiter.check((pick(limiter.limits), address))
        return await handler(request)

    return counted


_JSON = "application/json"


def _from_cache(handler: Handler, key_of: CacheKey, pick: PickLimit | None) -> Handler:
    async def from_cache(request: Request) -> Response:
        core: Core = request.app.state.core
        key = key_of(core, request)
        limiter = core.limiter
        hit = None
        if pick is not None and limiter.enabled:
            hit = (pick(limiter.limits), client_address(request, limiter.trusted_proxies))
            request.scope[LOOKUP_COUNTED] = True  # the route does not count it again
        if key is None:
            if hit is not None:
                await limiter.check(hit)
            return await handler(request)
        try:
            body = await core.referrals.cached_view(key, limiter=limiter, hit=hit)
        except RateLimited as exc:  # raised outside the route: answered here, the same way
            return await domain_error_handler(request, exc)
        if body is None:
            return await handler(request)
        return Response(body, media_type=_JSON)

    return from_cache
