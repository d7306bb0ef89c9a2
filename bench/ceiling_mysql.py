"""The ceilings of the database read paths on MariaDB: bench/ceiling.py's, with the same
driver the service uses there (asyncmy) and the SQL in MySQL's spelling.

    uvicorn bench.ceiling_mysql:app    # BENCH_MARIADB_URL, BENCH_REDIS_URL, SECRET_KEY
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncmy
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.ceiling import REDIS_URL, _json, _user_id

DATABASE_URL = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/referral_bench")

ME = """SELECT id, email, full_name, referrer_id, telegram_id, created_at, is_superuser,
  email_verified, company, job_title, location, avatar_url, enrichment_status,
  token_version, erased_at, blocked_at FROM users WHERE id = %s"""
LIVE_CODE = """SELECT c.code, c.expires_at FROM users u JOIN referral_codes c ON c.owner_id = u.id
  WHERE u.email = %s AND u.blocked_at IS NULL AND c.closed_at IS NULL
  AND c.expires_at > UTC_TIMESTAMP(6) AND (c.max_uses IS NULL OR c.uses < c.max_uses)"""
PAGE = """SELECT p.*,
  (SELECT status FROM referrals r WHERE r.id = p.id) AS status,
  (SELECT referral_count FROM users WHERE id = %s) AS total
  FROM (SELECT id, email, full_name, created_at, referral_code FROM users WHERE referrer_id = %s
        ORDER BY created_at DESC, id DESC LIMIT %s) AS p ORDER BY created_at DESC, id DESC"""
STATS = (
    """SELECT u.referral_count, s.approved, s.pending_review, s.rejected, s.qualified,
  s.link_opens, b.balance, b.pending FROM users u
  LEFT JOIN referrer_stats s ON s.referrer_id = u.id
  LEFT JOIN reward_balances b ON b.user_id = u.id WHERE u.id = %s""",
    "SELECT day, referrals FROM referrer_days WHERE referrer_id = %s AND day >= %s",
)
PAGE_COLUMNS = ("id", "email", "full_name", "created_at", "referral_code", "status")

state: dict[str, Any] = {}


async def _fetch(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with state["pool"].acquire() as connection, connection.cursor() as cursor:
        await cursor.execute(sql, args)
        return list(await cursor.fetchall())


async def me(request: Request) -> Response:
    """PyJWT decode + one query by primary key."""
    (row,) = await _fetch(ME, _user_id(request))
    names = [part.strip() for part in ME.split("FROM")[0].removeprefix("SELECT").split(",")]
    return _json(dict(zip(names, row, strict=True)))


async def uncached(request: Request) -> Response:
    """A cache miss, then one query (an email whose user has no code)."""
    email = request.query_params["email"]
    if await state["redis"].get("rc2:e:" + email) is None and not await _fetch(LIVE_CODE, email):
        return _json({"code": "referral_code_not_found"}, 404)
    return _json({})


async def referrals(request: Request) -> Response:
    """PyJWT decode + one keyset query (its total read by the same statement)."""
    _user_id(request)
    referrer = int(request.path_params["user_id"])
    limit = int(request.query_params.get("limit", 50))
    rows = await _fetch(PAGE, referrer, referrer, limit + 1)
    items = [dict(zip(PAGE_COLUMNS, row[:6], strict=True)) for row in rows[:limit]]
    total = rows[0][6] if rows else 0
    return _json({"items": items, "total": total, "limit": limit, "next_cursor": None})


async def stats(request: Request) -> Response:
    """PyJWT decode + the two reads of a referrer's stats, on one connection."""
    user_id = _user_id(request)
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=29)
    async with state["pool"].acquire() as connection, connection.cursor() as cursor:
        await cursor.execute(STATS[0], (user_id,))
        totals = await cursor.fetchone()
        await cursor.execute(STATS[1], (user_id, first))
        daily = dict(await cursor.fetchall())
    days = [
        {
            "date": (first + dt.timedelta(days=n)).isoformat(),
            "referrals": daily.get(first + dt.timedelta(days=n), 0),
        }
        for n in range(30)
    ]
    return _json({"totals": list(totals or ()), "last_30_days": days})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    parsed = make_url(DATABASE_URL)
    size = int(os.environ.get("DATABASE_POOL_SIZE", "20"))
    state["redis"] = Redis.from_url(REDIS_URL, protocol=2)
    state["pool"] = await asyncmy.create_pool(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        db=parsed.database,
        minsize=size,
        maxsize=size,
        autocommit=True,
    )
    yield
    state["pool"].close()
    await state["pool"].wait_closed()
    await state["redis"].aclose()


app = Starlette(
    routes=[
        Route("/me", me),
        Route("/uncached", uncached),
        Route("/users/{user_id}/referrals", referrals),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
