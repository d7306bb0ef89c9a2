"""The ceilings: each measured path's I/O done by a bare Starlette app, with no framework.

Every endpoint here does what the service's matching endpoint must do to answer, and nothing
else: the same Redis commands or the same SQL (through asyncpg directly), the same JWT check,
JSON out. No middleware, no headers, no metrics, no request ids, no validation beyond what
the I/O needs: the service's ratio to these includes what all of that costs.

    uvicorn bench.ceiling:app    # BENCH_DATABASE_URL, BENCH_REDIS_URL, SECRET_KEY
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
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
  s.link_opens, b.balance, b.pending FROM users u
  LEFT JOIN referrer_stats s ON s.referrer_id = u.id
  LEFT JOIN reward_balances b ON b.user_id = u.id WHERE u.id = $1""",
    "SELECT day, referrals FROM referrer_days WHERE referrer_id = $1 AND day >= $2",
)
LEADERBOARD = """SELECT w.referrer_id, u.full_name, w.total FROM
  (SELECT referrer_id, sum(approved) AS total FROM referrer_days WHERE day >= $1
   GROUP BY referrer_id HAVING sum(approved) > 0) AS w
  JOIN users u ON u.id = w.referrer_id WHERE u.blocked_at IS NULL
  ORDER BY w.total DESC, w.referrer_id LIMIT $2"""

# The writes: what a sign-up with a code and a qualifying conversion must store, in one
# transaction each (the service's review, counters, ledger and event lookups included).
CAMPAIGN = """SELECT id, key, name, status, starts_at, ends_at, rules, created_at FROM campaigns
  WHERE id = $1"""
CODE_FOR_SIGNUP = """SELECT c.owner_id, c.campaign_id FROM referral_codes c
  JOIN users u ON u.id = c.owner_id
  WHERE c.code = $1 AND c.closed_at IS NULL AND c.expires_at > now() AND u.blocked_at IS NULL
  AND (c.max_uses IS NULL OR c.uses < c.max_uses)"""
SIGNUP = (
    """UPDATE referral_codes SET uses = uses + 1 WHERE code = $1 AND closed_at IS NULL
  AND expires_at > now() AND (max_uses IS NULL OR uses < max_uses) RETURNING owner_id""",
    "UPDATE users SET referral_count = referral_count + 1 WHERE id = $1 AND blocked_at IS NULL",
    """INSERT INTO users (email, password_hash, full_name, referrer_id, referral_code, created_at)
  VALUES ($1, $2, $3, $4, $5, now()) RETURNING id, created_at""",
    """INSERT INTO program_days (day, signups, referred) VALUES (current_date, 1, 1)
  ON CONFLICT (day) DO UPDATE SET signups = program_days.signups + 1,
  referred = program_days.referred + 1""",
    """INSERT INTO program_totals (id, users, referred) VALUES (1, 1, 1) ON CONFLICT (id)
  DO UPDATE SET users = program_totals.users + 1, referred = program_totals.referred + 1""",
    "SELECT count(*) FROM referrals WHERE code = $1 AND created_at > now() - interval '1 hour'",
    """INSERT INTO referrals (id, referrer_id, code, campaign_id, status, review_reasons,
  created_at) VALUES ($1, $2, $3, 1, $4, $5, now())""",
    """INSERT INTO referrer_stats (referrer_id, approved) VALUES ($1, 1) ON CONFLICT
  (referrer_id) DO UPDATE SET approved = referrer_stats.approved + 1""",
    """INSERT INTO referrer_days (referrer_id, day, referrals, approved)
  VALUES ($1, current_date, 1, 1) ON CONFLICT (referrer_id, day) DO UPDATE SET
  referrals = referrer_days.referrals + 1, approved = referrer_days.approved + 1""",
    """INSERT INTO campaign_days (campaign_id, day, signups) VALUES (1, current_date, 1)
  ON CONFLICT (campaign_id, day) DO UPDATE SET signups = campaign_days.signups + 1""",
    """INSERT INTO referrer_campaigns (referrer_id, campaign_id, referrals) VALUES ($1, 1, 1)
  ON CONFLICT (referrer_id, campaign_id) DO UPDATE
  SET referrals = referrer_campaigns.referrals + 1""",
)
ENDPOINTS = "SELECT id, events FROM webhook_endpoints WHERE enabled"
KEY = "SELECT id, last_used_at FROM api_keys WHERE key_digest = $1"
CONVERSION = (
    "SELECT id FROM users WHERE id = $1 AND erased_at IS NULL",
    # The referral with both sides' flags, the referrer's chat, its campaign and qualification.
    """SELECT r.id, u.email, u.full_name, r.referrer_id, r.code, r.status, r.review_reasons,
  r.created_at, u.blocked_at IS NULL AND u.erased_at IS NULL AS earns,
  f.blocked_at IS NULL AND f.erased_at IS NULL AS referrer_earns, f.telegram_id,
  r.campaign_id, r.qualified_at, c.id, c.key, c.name, c.status, c.starts_at, c.ends_at,
  c.rules, c.created_at
  FROM referrals r JOIN users u ON u.id = r.id JOIN users f ON f.id = r.referrer_id
  JOIN campaigns c ON c.id = r.campaign_id WHERE r.id = $1""",
    """UPDATE referrals SET qualified_at = now() WHERE id = $1 AND qualified_at IS NULL
  AND status != 'rejected' RETURNING referrer_id, status""",
    """INSERT INTO conversions (user_id, event, external_id, amount, currency, created_at,
  referral_qualified) VALUES ($1, $2, $3, $4, $5, now(), true)
  ON CONFLICT (external_id) DO NOTHING RETURNING id, created_at""",
    """UPDATE referrer_campaigns SET qualified = qualified + 1 WHERE referrer_id = $1
  AND campaign_id = 1 RETURNING qualified""",
    "UPDATE referrals SET rewarded_at = now() WHERE id = $1",
    """INSERT INTO rewards (user_id, points, reason, status, referral_id, conversion_id,
  campaign_id, created_at, available_at)
  SELECT u, p, r, 'available', f, c, 1, t, t FROM unnest($1::int[], $2::bigint[], $3::text[],
  $4::int[], $5::int[], $6::timestamptz[]) AS x(u, p, r, f, c, t)
  ON CONFLICT (conversion_id, reason) DO NOTHING RETURNING id, user_id, points, reason,
  status, referral_id, conversion_id, campaign_id, note, created_at, available_at""",
    """INSERT INTO reward_balances (user_id, balance) SELECT * FROM unnest($1::int[],
  $2::bigint[]) ON CONFLICT (user_id) DO UPDATE SET balance = reward_balances.balance
  + excluded.balance""",
    """INSERT INTO referrer_stats (referrer_id, qualified) VALUES ($1, 1) ON CONFLICT
  (referrer_id) DO UPDATE SET qualified = referrer_stats.qualified + 1""",
    """INSERT INTO program_days (day, qualified) VALUES (current_date, 1) ON CONFLICT (day)
  DO UPDATE SET qualified = program_days.qualified + 1""",
    """INSERT INTO program_totals (id, qualified, rewards_points) VALUES (1, 1, $1)
  ON CONFLICT (id) DO UPDATE SET qualified = program_totals.qualified + 1,
  rewards_points = program_totals.rewards_points + excluded.rewards_points""",
    """INSERT INTO campaign_days (campaign_id, day, qualified, rewarded, points_granted)
  VALUES (1, current_date, 1, 1, $1) ON CONFLICT (campaign_id, day) DO UPDATE SET
  qualified = campaign_days.qualified + 1, rewarded = campaign_days.rewarded + 1,
  points_granted = campaign_days.points_granted + excluded.points_granted""",
    """INSERT INTO campaign_qualify_hours (campaign_id, day, hours, count)
  VALUES (1, current_date, $1, 1) ON CONFLICT (campaign_id, day, hours) DO UPDATE SET
  count = campaign_qualify_hours.count + 1""",
)
# A campaign's funnel in one statement, its campaign found by key (as the service reads it).
_NULLS = ", ".join(["NULL::bigint"] * 6)
_OF_KEY = "(SELECT id FROM campaigns WHERE key = $1)"
FUNNEL = f"""SELECT 0, coalesce(sum(link_opens), 0)::bigint, coalesce(sum(signups), 0)::bigint,
  coalesce(sum(qualified), 0)::bigint, coalesce(sum(rewarded), 0)::bigint,
  coalesce(sum(pending_review), 0)::bigint, coalesce(sum(rejected), 0)::bigint,
  coalesce(sum(points_granted), 0)::bigint, coalesce(sum(points_revoked), 0)::bigint
  FROM campaign_days WHERE campaign_id = {_OF_KEY} AND day >= $2
  UNION ALL SELECT 1, hours::bigint, coalesce(sum(count), 0)::bigint, {_NULLS}
  FROM campaign_qualify_hours WHERE campaign_id = {_OF_KEY} AND day >= $2 GROUP BY hours
  UNION ALL SELECT 2, coalesce(sum(began), 0)::bigint,
  coalesce(sum(CASE WHEN day < $2 THEN ended ELSE 0 END), 0)::bigint, {_NULLS}
  FROM code_span_days WHERE campaign_id = {_OF_KEY}
  UNION ALL SELECT 3, id::bigint, NULL::bigint, {_NULLS} FROM campaigns WHERE key = $1"""
# The service's password cost (core/infra/security.py), hashed by one thread as the service does.
_hasher = PasswordHash((Argon2Hasher(memory_cost=19 * 1024, time_cost=2, parallelism=1),))
_hashing = ThreadPoolExecutor(1)

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
    if await redis.get("rc2:e:" + email) is None:
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


async def signup(request: Request) -> Response:
    """A sign-up with a code: the email is free, the code live; hash; then one transaction."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    body = json.loads(await request.body())
    email, code = body["email"].lower(), body["referral_code"]
    async with pool.acquire() as connection:
        if await connection.fetchval("SELECT 1 FROM users WHERE email = $1", email):
            return _json({"code": "email_taken"}, 409)
        found = await connection.fetchrow(CODE_FOR_SIGNUP, code)
        if found is None:
            return _json({"code": "referral_code_not_found"}, 404)
        await connection.fetchrow(CAMPAIGN, found["campaign_id"])  # running?
    hashed = await asyncio.get_running_loop().run_in_executor(
        _hashing, _hasher.hash, body["password"]
    )
    async with pool.acquire() as connection, connection.transaction():
        owner = await connection.fetchval(SIGNUP[0], code)
        await connection.execute(SIGNUP[1], owner)
        user = await connection.fetchrow(SIGNUP[2], email, hashed, None, owner, code)
        await connection.fetchrow(CAMPAIGN, found["campaign_id"])  # its review rules
        recent = await connection.fetchval(SIGNUP[5], code)
        status = "approved" if recent < 1_000_000 else "pending_review"
        await connection.execute(SIGNUP[6], user["id"], owner, code, status, "[]")
        await connection.execute(SIGNUP[10], owner)  # the referrer's campaign row, now
        await connection.fetch(ENDPOINTS)
        # The counters in the service's order: per referrer, then the shared rows by name.
        await connection.execute(SIGNUP[7], owner)
        await connection.execute(SIGNUP[8], owner)
        await connection.execute(SIGNUP[9])
        await connection.execute(SIGNUP[3])
        await connection.execute(SIGNUP[4])
    return _json({"id": user["id"], "email": email, "referrer_id": owner}, 201)


async def convert(request: Request) -> Response:
    """A referred user's first conversion: the key, the user, then one transaction that
    qualifies the referral and rewards both sides."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    digest = hashlib.sha256(request.headers["x-api-key"].encode()).hexdigest()
    body = json.loads(await request.body())
    async with pool.acquire() as connection:
        if await connection.fetchrow(KEY, digest) is None:
            return _json({"code": "bad_api_key"}, 401)
        if await connection.fetchval(CONVERSION[0], body["user_id"]) is None:
            return _json({"code": "user_not_found"}, 404)
        async with connection.transaction():
            await connection.fetchrow(CONVERSION[1], body["user_id"])  # its campaign with it
            qualified = await connection.fetchrow(CONVERSION[2], body["user_id"])
            made = await connection.fetchrow(
                CONVERSION[3],
                body["user_id"],
                body["event"],
                body["external_id"],
                str(body["amount"]),
                body["currency"],
            )
            await connection.fetch(ENDPOINTS)
            referrer = qualified["referrer_id"]
            await connection.fetchval(CONVERSION[4], referrer)
            await connection.execute(CONVERSION[5], body["user_id"])
            both = [referrer, body["user_id"]]
            now = dt.datetime.now(dt.UTC)
            granted = await connection.fetch(
                CONVERSION[6],
                both,
                [100, 50],
                ["referral_qualified", "referred_signup_bonus"],
                [body["user_id"]] * 2,
                [made["id"]] * 2,
                [now, now],
            )
            # The counters in the service's order: per referrer and user, then the shared rows.
            await connection.execute(CONVERSION[8], referrer)
            await connection.execute(CONVERSION[7], both, [100, 50])
            await connection.execute(CONVERSION[11], 150)
            await connection.execute(CONVERSION[12], 0)
            await connection.execute(CONVERSION[9])
            await connection.execute(CONVERSION[10], 150)
    return _json(
        {
            "id": made["id"],
            "user_id": body["user_id"],
            "event": body["event"],
            "external_id": body["external_id"],
            "amount": body["amount"],
            "currency": body["currency"],
            "created_at": made["created_at"].isoformat(),
            "referral_qualified": True,
            "capped": False,
            "refunded_at": None,
            "rewards": [dict(row) for row in granted],
        },
        201,
    )


async def funnel(request: Request) -> Response:
    """PyJWT decode + the operator's row + the funnel, its campaign found by key, in one read."""
    pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
    user_id = _user_id(request)
    days = int(request.query_params.get("days", 30))
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    async with pool.acquire() as connection:
        operator = await connection.fetchrow(ME, user_id)
        if operator is None or not operator["is_superuser"]:
            return _json({"code": "forbidden"}, 403)
        rows = await connection.fetch(FUNNEL, request.path_params["key"], first)
    if not any(row[0] == 3 for row in rows):
        return _json({"code": "campaign_not_found"}, 404)
    totals = next(row[1:] for row in rows if row[0] == 0)
    hours = sorted((row[1], row[2]) for row in rows if row[0] == 1)
    began, ended = next(row[1:3] for row in rows if row[0] == 2)
    referrers = began - ended
    names = (
        "link_opens",
        "signups",
        "qualified",
        "rewarded",
        "pending_review",
        "rejected",
        "points_granted",
        "points_revoked",
    )
    counts = dict(zip(names, (int(v) for v in totals), strict=True))
    return _json(
        {
            "days": days,
            **counts,
            "k_factor": round(counts["signups"] / referrers, 4) if referrers else 0,
            "median_hours_to_qualify": float(hours[len(hours) // 2][0]) if hours else None,
        }
    )


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
        Route("/campaigns/{key}/funnel", funnel),
        Route("/signup", signup, methods=["POST"]),
        Route("/convert", convert, methods=["POST"]),
    ],
    lifespan=lifespan,
)
