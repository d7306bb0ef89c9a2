"""The write paths of `make bench`: a sign-up with a code and a qualifying conversion.

Every request writes something new, so each wrk run gets its own data: a sign-up an email no
one has used; a conversion a referred user who has not qualified yet, from a block of such
users inserted just before the run (`fresh_referred`). The ceilings (`/signup`, `/convert` in
bench/ceiling.py) do the same writes in one transaction through asyncpg.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

import asyncpg

from bench import seed

API_KEY = "rk_bench-writes-key-0123456789abcdef"
# Referrers of the fresh users: ordinary seeded users with no special role in the reads.
REFERRERS = range(seed.SMALL + 1_000, seed.SMALL + 3_000)
BLOCK = 25_000  # fresh referred users per wrk run: more than one run converts


async def ensure_api_key() -> None:
    from core.infra import security

    connection = await asyncpg.connect(seed.DATABASE_URL)
    try:
        await connection.execute(
            """INSERT INTO api_keys (name, key_digest, created_at)
               SELECT 'bench writes', $1::varchar, now()
               WHERE NOT EXISTS (SELECT 1 FROM api_keys WHERE key_digest = $1)""",
            security.token_digest(API_KEY),
        )
    finally:
        await connection.close()


async def fresh_referred(count: int = BLOCK) -> int:
    """Insert `count` referred users who have not converted; the first one's id (the others
    follow it without gaps)."""
    tag = secrets.token_hex(4)
    connection = await asyncpg.connect(seed.DATABASE_URL)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            first = await connection.fetchval(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), "
                "(SELECT max(id) FROM users) + $1) - $1 + 1",
                count,
            )
            await connection.execute(
                """INSERT INTO users (id, email, password_hash, full_name, referrer_id,
                     referral_code, created_at)
                   SELECT $1 + n, 'fresh-' || $2 || '-' || n || '@example.com', '', NULL,
                     $3 + n % $4, 'fresh', now()
                   FROM generate_series(0, $5 - 1) AS n""",
                first,
                tag,
                REFERRERS.start,
                len(REFERRERS),
                count,
            )
            await connection.execute(
                """INSERT INTO referrals (id, referrer_id, code, status, review_reasons,
                     created_at)
                   SELECT id, referrer_id, 'fresh', 'approved', '[]', created_at FROM users
                   WHERE id >= $1 AND id < $1 + $2""",
                first,
                count,
            )
            # What their sign-ups would have made: the referrers' rows in the campaign.
            await connection.execute(
                """INSERT INTO referrer_campaigns (referrer_id, campaign_id, referrals)
                   SELECT r, 1, 0 FROM generate_series($1::int, $2::int) AS r
                   ON CONFLICT DO NOTHING""",
                REFERRERS.start,
                REFERRERS.stop - 1,
            )
    finally:
        await connection.close()
    return int(first)


def _script(body: str) -> Path:
    file = Path(tempfile.mkstemp(suffix=".lua", prefix="bench-writes-")[1])
    file.write_text(body)
    return file


def signup_script() -> Path:
    """POST a sign-up with the seeded code; every request a new email address."""
    tag = secrets.token_hex(4)
    return _script(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  local body = \'{{"email": "signup-{tag}-\' .. n .. \'@example.com", '
        f'"password": "{seed.PASSWORD}", "referral_code": "{seed.CODE}"}}\'\n'
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n"
    )


def conversion_script(first: int) -> Path:
    """POST the first conversion of each fresh user, from `first` on, by the bench's key."""
    tag = secrets.token_hex(4)
    return _script(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-API-Key"] = "{API_KEY}"\n'
        "local n = -1\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  local body = \'{{"user_id": \' .. ({first} + n) .. \', "event": "purchase", '
        f'"external_id": "{tag}-\' .. n .. \'", "amount": 49.9, "currency": "EUR"}}\'\n'
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n"
    )


def fresh_conversions() -> Path:
    """A Lua script over a new block of fresh referred users."""
    return conversion_script(asyncio.run(fresh_referred()))
