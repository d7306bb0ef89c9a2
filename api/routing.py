"""The route class of every router: what a route declares about itself, applied before FastAPI
reads the body or solves a dependency.

- `per_address(pick)`: a per-client-address limit counted before the body is read. FastAPI
  parses the body before it solves any dependency, so a limit written as a dependency never
  counts a malformed body: a client could send junk for free.
- `cached_read(key)`: a public read answered from the core's cache of its finished JSON, by
  `CachedReads` before FastAPI routes the request. A hit runs no SQL, no validation, no
  dependency solving and no serialisation; its rate limit and the cache read are one Redis
  round trip when both live in Redis. A miss goes on to the route, which is the one
  documented implementation and fills the cache.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.convertors import Convertor
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.clients import client_address
from api.errors import domain_error_handler
from api.ratelimit import LOOKUP_COUNTED
from core.container import Core
from core.infra.cache import Lookup
from core.infra.errors import DomainError
from core.infra.ratelimit import Limit, Limits

log = logging.getLogger(__name__)

PickLimit = Callable[[Limits], Limit]
# (core, request) -> the cache key of what this request reads, or None: not cacheable.
CacheKey = Callable[[Core, Request], str | None]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Where a miss leaves what the cache said, for the route (see `seen_by_cache`).
SEEN = "cached_read.seen"
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


def seen_by_cache(request: Request) -> Lookup | None:
    """What `CachedReads` read of this request's cache key before the route ran (a miss), or
    None when it did not read it."""
    seen: Lookup | None = request.scope.get(SEEN)
    return seen


class ServiceRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        pick: PickLimit | None = getattr(self.endpoint, _PER_ADDRESS, None)
        if pick is not None:
            handler = _counted(handler, pick)
        return handler


def _counted(handler: Handler, pick: PickLimit) -> Handler:
    async def counted(request: Request) -> Response:
        limiter = request.app.state.core.limiter
        if limiter.enabled:
            address = client_address(request)
            await limiter.check((pick(limiter.limits), address))
        return await handler(request)

    return counted


@dataclass(frozen=True, slots=True)
class _CachedRoute:
    route: APIRoute
    pattern: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    key_of: CacheKey
    pick: PickLimit | None


def cached_routes(prefix: str, routers: Iterable[APIRouter]) -> list[_CachedRoute]:
    """The GET routes marked `cached_read` among these routers, mounted under `prefix`."""
    found = []
    for router in routers:
        for route in router.routes:
            marked = getattr(getattr(route, "endpoint", None), _CACHED_READ, None)
            if isinstance(route, APIRoute) and marked and "GET" in (route.methods or ()):
                pattern, _, convertors = compile_path(prefix + route.path)
                found.append(_CachedRoute(route, pattern, convertors, *marked))
    return found


class CachedReads:
    """Serves the hits of every `cached_read` route before FastAPI's routing.

    Routing through nested routers costs more than the cache read (it tries every route of
    every router in turn), so the marked routes' paths are matched here, from a table made of
    the routes' own declarations: no path is written twice, and a route added with the mark
    tomorrow is served the same way. A miss, or anything not a marked GET, goes on to FastAPI.
    """

    def __init__(self, app: ASGIApp, *, core: Core, routes: list[_CachedRoute]) -> None:
        self.app = app
        self.core = core
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for cached in self.routes:
                found = cached.pattern.match(scope["path"])
                if found is not None:
                    if await self._guarded(cached, found, scope, receive, send):
                        return
                    break
        await self.app(scope, receive, send)

    async def _guarded(
        self, cached: _CachedRoute, found: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """`_answer`, outside FastAPI's error handling (see api.main.ServiceApp): what this
        shortcut did not expect, before it sent anything, is the route's to answer."""
        sent: list[Message] = []

        async def sending(message: Message) -> None:
            sent.append(message)
            await send(message)

        try:
            return await self._answer(cached, found, scope, receive, sending)
        except Exception:
            if sent:
                raise
            log.exception("cached read of %s failed; the route answers", cached.route.path)
            return False

    async def _answer(
        self, cached: _CachedRoute, found: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Answer a hit (or a refusal by the limit); False: let the route answer."""
        scope["path_params"] = {
            name: cached.convertors[name].convert(value)
            for name, value in found.groupdict().items()
        }
        scope["route"] = cached.route  # metrics name the route template, hit or not
        request = Request(scope)
        core = self.core
        key = cached.key_of(core, request)
        limiter = core.limiter
        hit = None
        if cached.pick is not None and limiter.enabled:
            hit = (cached.pick(limiter.limits), client_address(request))
            scope[LOOKUP_COUNTED] = True  # the route does not count it again
        try:
            if key is None:
                if hit is not None:
                    await limiter.check(hit)
                return False
            seen = await core.views.cached(key, limiter=limiter, hit=hit)
        except DomainError as exc:  # refused by the limit, or remembered as missing
            await (await domain_error_handler(request, exc))(scope, receive, send)
            return True
        if seen.value is None:
            scope[SEEN] = seen  # the route reads the database without asking the cache again
            return False
        body = seen.value
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
