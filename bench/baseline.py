"""The yardstick: a bare Starlette endpoint that does one Redis GET and returns the bytes."""

from __future__ import annotations

import os

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

redis = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))


async def lookup(request: Request) -> Response:
    value = await redis.get("bench:" + request.query_params["email"])
    return Response(value, media_type="application/json")


app = Starlette(routes=[Route("/lookup", lookup)])
