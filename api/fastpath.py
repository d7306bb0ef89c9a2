"""Cache hits of `GET /api/v1/referral-codes?email=` served before FastAPI's routing.

The lookup is the service's hottest path, and a hit is one cache read: routing through the
nested routers and solving dependencies would cost more than the read itself. Anything that
is not a plain cache hit (a miss, another query shape) falls through to the
FastAPI route, which stays the one documented, authoritative implementation. The lookup's
rate limit is checked here, before the cache, so a hit is limited like any other request.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import domain_error_handler
from api.ratelimit import check_lookup_limit
from core.container import Core
from core.errors import RateLimited

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
        if self.core.limiter.enabled:
            # Counted here, hit or miss; the route then knows not to count it again.
            try:
                await check_lookup_limit(Request(scope), self.core)
            except RateLimited as exc:
                response = await domain_error_handler(Request(scope), exc)
                await response(scope, receive, send)
                return
        if (body := await self._hit(scope)) is not None:
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

    async def _hit(self, scope: Scope) -> bytes | None:
        query: bytes = scope["query_string"]
        # Only the plain shape `email=<value>`; repeated or extra parameters take the slow path.
        if not query.startswith(b"email=") or b"&" in query:
            return None
        try:
            email = unquote_plus(query[6:].decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None
        if not email:
            return None
        return await self.core.referrals.cached_by_email(email)
