"""The ceilings: each measured path's I/O done by a bare Starlette app, with no framework.

Every endpoint here does what the service's matching endpoint must do to answer, and nothing
else: the same Redis commands or the same SQL (through asyncpg directly), the same JWT check,
JSON out. No middleware, no headers, no metrics, no request ids, no validation beyond what
the I/O needs: the service's ratio to these includes what all of that costs.

    uvicorn bench.ceiling:app    # BENCH_DATABASE_URL, BENCH_REDIS_URL, SECRET_KEY
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import jwt
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = os.environ.get("SECRET_KEY", "")

# The statements the service runs (the service builds them with SQLAlchemy; same plans).
ME = """SELECT id, email, full_name, referrer_id, telegram_id, created_at, is_superuser,
  email_verified, company, job_title, location, avatar_url, enrichment_status,
  token_version, erased_at, blocked_at FROM users WHERE id = $1"""
LIVE_CODE = """SELECT c.code, c.expires_at FROM users u JOIN referral_codes c ON c.owner_id = u.id
  WHERE u.email = $1 AND u.blocked_at IS NULL AND c.closed_at IS NULL AND c.expires_at > now()
  AND (c.max_uses IS NULL OR c.uses < c.max_uses)"""
PAGE = """SELECT p.*,
  (SELECT status FROM referrals r WHERE r.id = p.id) AS status,
  (SELECT referral_count FROM users WHERE id = $1) AS total
  FROM (SELECT id, email, full_name, created_at, referral_code FROM users WHERE referrer_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2) AS p ORDER BY created_at DESC, id DESC"""
STATS = (
    """SELECT u.referral_count, s.approved, s.pending_review, s.rejected, s.qualified,
  s.link_opens, b.balance FROM users u
  LEFT JOIN referrer_stats s ON s.referrer_id = u.id
  LEFT JOIN reward_balances b ON b.user_id = u.id WHERE u.id = $1""",
    "SELECT day, referrals FROM referrer_days WHERE referrer_id = $1 AND day >= $2",
)
LEADERBOARD = """SELECT w.referrer_id, u.full_name, w.total FROM
  (SELECT referrer_id, sum(approved) AS total FROM referrer_days WHERE day >= $1
   GROUP BY referrer_id HAVING sum(approved) > 0) AS w
  JOIN users u ON u.id = w.referrer_id WHERE u.blocked_at IS NULL
  ORDER BY w.total DESC, w.referrer_id LIMIT $2"""

state: dict[str, object] = {}


def _json(value: object, status: int = 200) -> Response:
    return Response(json.dumps(value, default=str), status, media_type="application/json")


def _user_id(request: Request) -> int:
    token = request.headers["authorization"].removeprefix("Bearer ")
    return int(jwt.decode(token, SECRET, algorithms=["HS256"])["sub"])


async def cached(request: Request) -> Response:
    """Both cached lookups: one Redis GET of the finished JSON."""
    redis: Redis = state["redis"]  # type: ignore[assignment]
    return Response(await redis.get(request.query_params["key"]), media_type="application/json")


async def me(request: Request) -> Response:
    """PyJWT decode + one query by primary key."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    row = await pool.fetchrow(ME, _user_id(request))
    return _json(dict(row))


async def uncached(request: Request) -> Response:
    """The lookup of an email whose user has no code: a cache miss, then one query."""
    redis: Redis = state["redis"]  # type: ignore[assignment]
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    email = request.query_params["email"]
    if await redis.get("rc:e:" + email) is None:
        row = await pool.fetchrow(LIVE_CODE, email)
        if row is None:
            return _json({"code": "referral_code_not_found"}, 404)
    return _json({})


async def referrals(request: Request) -> Response:
    """PyJWT decode + one keyset query (its total read by the same statement)."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    _user_id(request)
    referrer = int(request.path_params["user_id"])
    limit = int(request.query_params.get("limit", 50))
    rows = await pool.fetch(PAGE, referrer, limit + 1)
    items = [
        {k: row[k] for k in ("id", "email", "full_name", "created_at", "referral_code", "status")}
        for row in rows[:limit]
    ]
    total = rows[0]["total"] if rows else 0
    return _json({"items": items, "total": total, "limit": limit, "next_cursor": None})


async def stats(request: Request) -> Response:
    """PyJWT decode + the two reads of a referrer's stats, on one connection."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    user_id = _user_id(request)
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=29)
    async with pool.acquire() as connection:
        totals = await connection.fetchrow(STATS[0], user_id)
        daily = dict(await connection.fetch(STATS[1], user_id, first))
    days = [
        {
            "date": (first + dt.timedelta(days=n)).isoformat(),
            "referrals": daily.get(first + dt.timedelta(days=n), 0),
        }
        for n in range(30)
    ]
    return _json({**dict(totals or {}), "last_30_days": days})


async def leaderboard(request: Request) -> Response:
    """The window's approved referrals per referrer, most first: one aggregate query."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    days = int(request.query_params.get("days", 30))
    limit = int(request.query_params.get("limit", 10))
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    rows = await pool.fetch(LEADERBOARD, first, limit)
    items = [
        {
            "rank": n,
            "referrer": {"id": r["referrer_id"], "full_name": r["full_name"]},
            "referrals": r["total"],
        }
        for n, r in enumerate(rows, start=1)
    ]
    return _json({"days": days, "items": items})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    state["redis"] = Redis.from_url(REDIS_URL, protocol=2)
    # As many connections as the service's pool holds (DATABASE_POOL_SIZE, default 20).
    size = int(os.environ.get("DATABASE_POOL_SIZE", "20"))
    state["pool"] = await asyncpg.create_pool(DATABASE_URL, min_size=size, max_size=size)
    yield
    await state["pool"].close()  # type: ignore[attr-defined]
    await state["redis"].aclose()  # type: ignore[attr-defined]


app = Starlette(
    routes=[
        Route("/cached", cached),
        Route("/me", me),
        Route("/uncached", uncached),
        Route("/users/{user_id}/referrals", referrals),
        Route("/stats", stats),
        Route("/leaderboard", leaderboard),
    ],
    lifespan=lifespan,
)
